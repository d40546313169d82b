"""A bounded hypothesis fuzz of the REST API (issue 19, item 10): predict and train bodies, and the specs of both
experiment types. Whatever arrives, the answer is never a 5xx. Slow (run by CI)."""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.config import HubConfig
from framework.models.detectors import DETECTORS
from framework.models.forecasters import FORECASTERS

pytestmark = pytest.mark.slow

EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)
COLUMNS = ["timestamp", "s01", "s02", "value", "fault", "", "=x", "a" * 300]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 2**63, 1e308]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["2024-01-01T00:00:00", "1700000000000", "not a time", "NaN"]),
)
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
records = st.lists(st.dictionaries(st.sampled_from(COLUMNS) | st.text(max_size=6), scalars, max_size=5), max_size=6)
bodies = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries({"records": records}).map(json.dumps),
    st.fixed_dictionaries({"records": records}, optional={"id": json_values, "schema": json_values}).map(json.dumps),
    st.binary(max_size=300),
    st.integers(1, 5000).map(lambda depth: '{"records": ' + "[" * depth + "]" * depth + "}"),
)
params = st.dictionaries(
    st.sampled_from(["n_estimators", "n_neighbors", "n_components", "lags", "n_jobs", "alpha", "model", "folds"])
    | st.text(max_size=8),
    scalars,
    max_size=3,
)


def specs(model_names: list[str]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {},
        optional={
            "model": st.fixed_dictionaries(
                {"name": st.sampled_from(model_names) | st.text(max_size=8)}, optional={"params": params}
            ),
            "features": st.lists(st.sampled_from(COLUMNS), max_size=4),
            "timestamp": st.sampled_from(COLUMNS),
            "target": st.sampled_from(COLUMNS),
            "frequency": st.sampled_from(["h", "us", "ns", "D", "MS", "15min", "bogus", ""]),
            "horizon": st.integers(-5, 10**12),
            "seasonal_period": st.integers(-5, 10**12),
            "max_grid_rows": st.integers(-5, 10**12),
            "threshold": json_values,
            "retrain": json_values,
            "colour": scalars,
        },
    )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    from framework.api.app import create_app
    from framework.datasets.process import make_process

    home = tmp_path_factory.mktemp("fuzz")
    config = HubConfig.model_validate(
        {
            "version": "1.0",
            "global": {"state_dir": str(home)},
            "plugins": {"mlops": {"type": "mlflow", "config": {"mlflow_uri": f"sqlite:///{home / 'mlflow.db'}"}}},
            "experiments": [
                {"name": "fault_detection", "module": "framework.FaultDetection", "class": "FaultDetectionExperiment"},
                {"name": "time_series", "module": "framework.TimeSeriesAnalysis", "class": "TimeSeriesExperiment"},
            ],
        }
    )
    with warnings.catch_warnings(), TestClient(create_app(config, api_key=""), raise_server_exceptions=False) as client:
        warnings.simplefilter("ignore")
        name = f"fuzz-{uuid.uuid4().hex[:8]}"
        spec = {"model": {"name": "pca"}, "timestamp": "timestamp", "label": "fault"}
        client.app.state.hub.create_experiment(name, "fault_detection", spec)
        client.app.state.hub.train(name, make_process(n_normal=400, n_test=10, seed=1)[0])
        yield client, name


def assert_no_5xx(response) -> None:
    assert response.status_code < 500, response.text[:500]


@FUZZ
@given(body=bodies)
def test_predict_bodies_never_answer_5xx(api, body) -> None:
    client, name = api
    answer = client.post(f"/experiments/{name}/predict", content=body, headers={"content-type": "application/json"})
    assert_no_5xx(answer)


@FUZZ
@given(body=bodies)
def test_train_bodies_never_answer_5xx(api, body) -> None:
    client, name = api
    answer = client.post(f"/experiments/{name}/train", content=body, headers={"content-type": "application/json"})
    assert_no_5xx(answer)


@FUZZ
@given(spec=specs(sorted(DETECTORS)))
def test_fault_detection_specs_never_answer_5xx(api, spec) -> None:
    client, _ = api
    body = {"name": f"fd-{uuid.uuid4().hex[:8]}", "type": "fault_detection", "spec": spec}
    assert_no_5xx(client.post("/experiments", json=body))


@FUZZ
@given(spec=specs(sorted(FORECASTERS)))
def test_time_series_specs_never_answer_5xx(api, spec) -> None:
    client, _ = api
    body = {"name": f"ts-{uuid.uuid4().hex[:8]}", "type": "time_series", "spec": spec}
    assert_no_5xx(client.post("/experiments", json=body))
