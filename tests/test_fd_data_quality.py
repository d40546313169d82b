"""Honest data quality through ``hub.predict``: any finite reading scores, gaps are named, dead sensors flag.

The same rules through the REST API: ``test_scoring_formats.py``; through the stream: ``test_streaming.py``.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from framework.config import HubConfig
from framework.datasets.process import make_process
from framework.ExperimentHub import ExperimentHub

SPEC = {"timestamp": "timestamp", "label": "fault", "data_quality": {"max_missing_rows": 4}}


@pytest.fixture(scope="module")
def process():
    return make_process(n_normal=3000, n_test=400, seed=5)


@pytest.fixture(params=["pca", "var_innovation", "lof"])
def trained(request, mlflow_sqlite_uri, process):
    config = HubConfig.model_validate(
        {
            "version": "1.0",
            "plugins": {"mlops": {"type": "mlflow", "config": {"mlflow_uri": mlflow_sqlite_uri}}},
            "experiments": [
                {"name": "fault_detection", "module": "framework.FaultDetection", "class": "FaultDetectionExperiment"}
            ],
        }
    )
    hub = ExperimentHub.from_hub_config(config)
    name = f"dq-{request.param}-{uuid.uuid4().hex[:8]}"
    hub.create_experiment(name, "fault_detection", {**SPEC, "model": {"name": request.param}})
    hub.train(name, process[0])
    yield hub, name
    hub.shutdown()


def test_huge_and_non_finite_readings_score_and_are_named(trained, process):
    hub, name = trained
    test = process[1].head(20).copy()
    test.loc[test.index[2], "s01"] = 1e155
    test.loc[test.index[3], "s02"] = -1e300
    test.loc[test.index[5], "s03"] = np.inf
    test.loc[test.index[6], "s04"] = -np.inf
    test.loc[test.index[7], "s05"] = np.nan
    test.loc[test.index[7], "s06"] = np.nan
    out = hub.predict(name, test)
    assert len(out) == 20 and np.isfinite(out["score"]).all()
    assert out["is_anomaly"].iloc[2] and out["is_anomaly"].iloc[3]  # a wild finite reading is an alarm
    assert out["top_feature"].iloc[2] == "s01" and out["top_feature"].iloc[3] == "s02"
    assert list(out["missing_features"].iloc[5:8]) == ["s03", "s04", "s05,s06"]
    assert (out["missing_features"].drop(out.index[5:8]) == "").all()
    assert not out["sensor_fault"].any()  # short gaps are gaps, not a dead sensor


def test_a_sensor_stuck_missing_raises_sensor_fault(trained, process):
    hub, name = trained
    test = process[1].head(30).copy()
    test.loc[test.index[10:], "s07"] = np.nan  # dead from row 10 on
    test.loc[test.index[2:5], "s08"] = np.nan  # a 3-row gap, within max_missing_rows
    out = hub.predict(name, test)
    expected = np.arange(30) >= 10 + 4  # more than 4 consecutive missing rows
    assert (out["sensor_fault"].to_numpy() == expected).all()
    assert (out["missing_features"].iloc[10:] == "s07").all()
    assert np.isfinite(out["score"]).all()
