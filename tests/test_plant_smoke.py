"""Smoke version of bench/plant.py: a few short Tennessee Eastman runs (tep-studio), so the claim can fail.

IDV 5 (condenser cooling water inlet temperature step) is the compensated fault: the controllers bring the
measurements back within hours and only a small lasting offset in a cooling-water valve remains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bench.plant import simulate
from framework.FaultDetection import FaultDetectionExperiment

WARMUP, ONSET = 4.0, 2.0


@pytest.fixture(scope="module")
def runs() -> dict[str, pd.DataFrame]:
    return {
        "train": simulate(100, 0, hours=16.0, warmup=WARMUP),
        "calib": simulate(101, 0, hours=8.0, warmup=WARMUP),
        "fault": simulate(102, 5, hours=10.0, onset=ONSET, warmup=WARMUP),
    }


def _fit(runs: dict[str, pd.DataFrame], model: dict) -> FaultDetectionExperiment:
    stacked = pd.concat([runs["train"], runs["calib"]], ignore_index=True)
    features = [c for c in stacked.columns if c.startswith("x") and stacked[c].std() > 1e-9]
    share = len(runs["calib"]) / len(stacked)
    spec = {"features": features, "model": model, "threshold": {"calibration_fraction": share}}
    return FaultDetectionExperiment(spec).fit(stacked)


def test_dynamic_detector_beats_static_pca_on_a_compensated_step(runs):
    fault = runs["fault"]
    y = fault["fault"].to_numpy(bool)
    late = fault["hour"].to_numpy() >= fault["hour"].max() - 3.0  # after the controllers compensated
    results = {}
    for name in ("pca", "var_innovation"):
        out = _fit(runs, {"name": name}).predict(fault)
        results[name] = (roc_auc_score(y, out["score"]), out["is_anomaly"][late].mean())
    (pca_auc, pca_late), (dyn_auc, dyn_late) = results["pca"], results["var_innovation"]
    assert dyn_auc > pca_auc + 0.05, results
    assert dyn_late > pca_late + 0.3, results


def test_threshold_transfers_to_an_unseen_normal_run(runs):
    exp = _fit(runs, {"name": "var_innovation"})
    unseen = simulate(103, 0, hours=6.0, warmup=WARMUP)
    rate = exp.predict(unseen)["is_anomaly"].mean()
    assert rate <= 2 * exp.spec.threshold.false_alarm_rate
    assert exp.validate().passed
    assert np.isfinite(exp.threshold_)
