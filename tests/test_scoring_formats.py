"""REST scoring as clients speak it: every body format gives the same predictions; responses say which model
answered; training bodies are checked against the spec before a job is queued; evaluate over REST.

In-process (``TestClient``) on the embedded default: no servers.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterator

import pandas as pd
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from framework.api.app import create_app
from framework.datasets.process import make_process
from framework.ExperimentHub import ExperimentHub

SPEC = {"model": {"name": "pca"}, "timestamp": "timestamp", "label": "fault"}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = make_process(n_normal=1500, n_test=400, seed=11)
    test = test.drop(columns=["fault_type", "fault_sensor"]).iloc[180:230].reset_index(drop=True)
    test["timestamp"] = test["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return train, test


@pytest.fixture(scope="module")
def client(tmp_path_factory, data) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("scoring")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPERIMENTHUB_HOME", str(home))
        patch.chdir(home)
        with ExperimentHub.from_config(embedded=True) as hub:
            hub.create_experiment("pump", "fault_detection", SPEC)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hub.train("pump", data[0])
            with TestClient(create_app(hub)) as test_client:
                yield test_client


def scores(response) -> list[float]:
    assert response.status_code == 200, response.text
    body = response.json()
    rows = body["records"] if "records" in body else body["predictions"]
    return [row["score"] for row in rows]


def test_every_format_gives_the_same_predictions(client: TestClient, data) -> None:
    rows = data[1]
    records = rows.to_dict(orient="records")  # full float precision, like the CSV (to_json rounds to 10 digits)
    split = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
    columnar = {column: rows[column].tolist() for column in rows.columns}
    csv = rows.to_csv(index=False).encode()
    predict, invoke = "/experiments/pump/predict", "/experiments/pump/invocations"
    answers = {
        "envelope": client.post(predict, json={"schema": "experimenthub.records/1", "id": "b1", "records": records}),
        "bare list": client.post(predict, json=records),
        "split": client.post(predict, json=split),
        "csv body": client.post(predict, content=csv, headers={"content-type": "text/csv"}),
        "csv upload": client.post(predict, files={"file": ("live.csv", io.BytesIO(csv), "text/csv")}),
        "dataframe_split": client.post(invoke, json={"dataframe_split": split}),
        "dataframe_records": client.post(invoke, json={"dataframe_records": records}),
        "instances": client.post(invoke, json={"instances": records}),
        "inputs": client.post(invoke, json={"inputs": columnar}),
        "invocations csv": client.post(invoke, content=csv, headers={"content-type": "text/csv"}),
    }
    expected = scores(answers["envelope"])
    assert len(expected) == len(rows) and len(set(expected)) > 1
    for form, response in answers.items():
        assert scores(response) == expected, form  # identical, not merely close
        assert response.headers["X-Model-Version"] == "1", form
        assert response.json()["model_version"] == 1 and response.json()["champion"] is True, form
    assert answers["envelope"].json()["input_id"] == "b1"
    stamps = pd.to_datetime([row["timestamp"] for row in answers["envelope"].json()["records"]])
    assert str(stamps.tz) == "UTC" and (stamps == pd.to_datetime(rows["timestamp"])).all()  # the UTC zone is kept


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("predict", {"columns": ["a", "b"], "data": [[1]]}, "data.0"),
        ("predict", {"columns": ["a"], "data": [[{"x": 1}]]}, "a"),
        ("invocations", {"dataframe_split": {"columns": "a", "data": []}}, "dataframe_split.columns"),
        ("invocations", {"instances": [[1, 2]]}, "instances"),
        ("invocations", {"inputs": {"a": [1, 2], "b": [1]}}, "inputs"),
        ("invocations", {"dataframe_records": [{"a": 1}], "instances": [{"a": 1}]}, None),
        ("invocations", {"dataframe_records": [{"a": {"nested": 1}}]}, "dataframe_records.0.a"),
    ],
)
def test_bad_scoring_bodies_name_the_field(client: TestClient, path: str, body, field) -> None:
    response = client.post(f"/experiments/pump/{path}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda f: f.drop(columns=["timestamp"]), "timestamp"),
        (lambda f: f.assign(timestamp="yesterday"), "timestamp"),
        (lambda f: f.astype({"s03": object}).assign(s03=lambda g: g["s03"].where(g.index != 7, "broken")), "s03"),
    ],
)
def test_train_body_is_checked_before_a_job_is_queued(client: TestClient, data, change, field) -> None:
    frame = change(data[0].iloc[:300].assign(timestamp=lambda f: f["timestamp"].astype(str)))
    response = client.post("/experiments/pump/train", json={"records": json.loads(frame.to_json(orient="records"))})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert not any(word in error["message"].lower() for word in ("parquet", "pickle", "arrow", "traceback"))
    history = client.app.state.hub.training_history("pump")
    assert [row["status"] for row in history] == ["FINISHED"]  # no job was queued, no run was started


def test_evaluate_over_rest(client: TestClient, data) -> None:
    records = json.loads(data[1].to_json(orient="records"))
    response = client.post("/experiments/pump/evaluate", json=records)
    assert response.status_code == 200, response.text
    metrics = response.json()["metrics"]
    assert {"roc_auc", "f1", "detection_rate"} <= set(metrics)
    assert 0.0 <= metrics["roc_auc"] <= 1.0
    unlabelled = client.post(
        "/experiments/pump/evaluate", json=[{k: v for k, v in r.items() if k != "fault"} for r in records]
    )
    assert unlabelled.status_code == 422 and unlabelled.json()["error"]["field"] == "fault"


def test_no_champion_says_so_with_the_reason(client: TestClient, data) -> None:
    hub = client.app.state.hub
    hub.create_experiment("drifting", "fault_detection", SPEC)
    train = data[0].copy()
    train.loc[1350:, "s01"] += 30.0  # the last hold-out half moves: the champion gate refuses the model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = hub.train("drifting", train)
    assert not result.promoted
    records = json.loads(data[1].to_json(orient="records"))
    body = client.post("/experiments/drifting/predict", json=records).json()
    assert body["model_version"] == 1 and body["champion"] is False
    assert "no champion" in body["warning"] and result.validation.reason in body["warning"]
    chosen = client.post("/experiments/drifting/predict", params={"version": 1}, json=records).json()
    assert chosen["champion"] is False and "warning" not in chosen  # asked for by number: no surprise to report


def test_a_failed_first_training_leaves_a_clear_state(client: TestClient, data) -> None:
    from framework.errors import DataValidationError

    hub = client.app.state.hub
    hub.create_experiment("first", "fault_detection", SPEC, exist_ok=True)
    with pytest.raises(DataValidationError):
        hub.train("first", data[0].iloc[:5])  # too few rows to fit
    assert hub.get_experiment("first").champion is None and hub.versions("first") == []
    [failed] = hub.training_history("first")
    assert failed["status"] == "FAILED" and failed["version"] is None and "rows" in failed["error"]
    hub.create_experiment("first", "fault_detection", SPEC, exist_ok=True)  # the re-run of a script
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert hub.train("first", data[0]).version == 1


def test_huge_and_missing_readings_score_through_rest(client: TestClient, data) -> None:
    rows = data[1].head(10).to_dict(orient="records")
    rows[2]["s01"] = 1e155  # finite: it must score (it was an IndexError, HTTP 500)
    rows[3]["s02"] = None  # missing: reconstructed, and named in the answer
    answer = client.post("/experiments/pump/predict", json={"records": rows})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["records"]
    assert predictions[2]["is_anomaly"] and predictions[2]["top_feature"] == "s01"
    assert predictions[3]["missing_features"] == "s02"
    assert all(p["missing_features"] == "" for i, p in enumerate(predictions) if i != 3)
    frame = data[1].head(5).copy()
    frame["s03"] = frame["s03"].astype(object)
    frame.loc[1, "s03"] = "inf"  # a CSV's inf is a missing reading too, never a healthy one
    csv = client.post(
        "/experiments/pump/predict", content=frame.to_csv(index=False), headers={"content-type": "text/csv"}
    )
    assert csv.status_code == 200, csv.text
    assert csv.json()["records"][1]["missing_features"] == "s03"
