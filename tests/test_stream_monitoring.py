"""Drift monitoring inside the live scorer, with real parts: RabbitMQ and the local stream, the MLflow store, the
job runner. A benign shift retrains once; a fault alarms and never retrains; a stationary stream stays quiet."""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from framework.config import HubConfig
from framework.ExperimentHub import ExperimentHub
from framework.streaming import declare_queues, events_topic, input_queue, prediction_queue
from tests.conftest import require_service
from tests.test_streaming import config_dict, run_until

warnings.filterwarnings("ignore", category=UserWarning)

SPEC = {
    "model": {"name": "pca"},
    "timestamp": "timestamp",
    "threshold": {"false_alarm_rate": 0.02},
    "monitoring": {"window": 500},
    "retrain": {"on_drift": True, "cooldown_rows": 2000, "window": 1000},
}


def plant(n: int, seed: int, start: str = "2024-01-01") -> pd.DataFrame:
    """Six correlated sensors around one operating point, one row per second."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(6) + 0.05 * np.ones((6, 6))
    frame = pd.DataFrame(rng.normal(size=(n, 6)) @ mixing, columns=[f"x{i}" for i in range(6)])
    return frame.assign(timestamp=pd.date_range(start, periods=n, freq="s"))


@pytest.fixture(params=["rabbitmq", "local"])
def monitored(request, tmp_path: Path):
    """A trained PCA detector under a unique name, and a watch on its events topic; queues removed after."""
    if request.param == "rabbitmq":
        require_service("rabbitmq")
    hub = ExperimentHub.from_hub_config(HubConfig.model_validate(config_dict(tmp_path / "home", request.param)))
    name = f"plant-{uuid.uuid4().hex[:8]}"
    hub.create_experiment(name, "fault_detection", SPEC)
    hub.train(name, plant(3000, 0))
    stream = hub.get_plugin("datastream")
    declare_queues(stream, name)
    watch = stream.watch(events_topic(name))
    yield hub, name, watch
    watch.close()
    for queue in (input_queue(name), prediction_queue(name), events_topic(name)):
        stream.delete_queue(queue)
    hub.shutdown()


def score(hub: ExperimentHub, name: str, live: pd.DataFrame):
    ids = hub.publish_records(name, live, batch_size=100)
    return run_until(hub, name, expected=len(ids), batch_size=10, model_refresh_s=0.5)


def watched_events(watch, at_least: int = 1, timeout: float = 20.0) -> list[dict]:
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(events) < at_least and time.monotonic() < deadline:
        events += [json.loads(d.body) for d in watch.poll(max_messages=100, timeout=0.5)]
    events += [json.loads(d.body) for d in watch.poll(max_messages=100, timeout=0.5)]  # anything that follows
    return events


def test_benign_shift_retrains_once_and_makes_a_new_version(monitored):
    hub, name, watch = monitored
    live = plant(4500, 100, "2024-02-01")
    live.loc[2500:, "x1"] += 0.5  # a new operating point, still inside the alarm target
    stats = score(hub, name, live)
    assert len(stats.retrain_jobs) == 1  # the cooldown (2000 rows) holds back a second one
    result = hub.wait_job(stats.retrain_jobs[0], timeout=120)
    assert result["version"] == 2
    events = watched_events(watch)
    drift = [e for e in events if e["kind"] == "drift"]
    assert len(drift) >= 1 and drift[0]["action"] == "retrain" and drift[0]["job_id"] == stats.retrain_jobs[0]
    assert drift[0]["features"] == ["x1"] and drift[0]["statistic"] == "wasserstein"
    assert drift[0]["value"] > drift[0]["threshold"] and drift[0]["version"] == 1
    assert drift[0]["window"]["start_row"] >= 2000  # not before the shift
    assert not [e for e in events if e["kind"] == "fault"]
    stored = hub.recent_events(name)  # the store is the system of record
    assert {e["job_id"] for e in stored if e.get("action") == "retrain"} == set(stats.retrain_jobs)
    report = hub.monitoring_report(name)
    assert report["windows"] and report["windows"][0]["drift"]["x1"] > 0


def test_fault_raises_a_fault_event_and_never_retrains(monitored):
    hub, name, watch = monitored
    live = plant(4500, 100, "2024-02-01")
    live.loc[2500:3999, ["x1", "x2"]] += 4.0  # a fault episode
    stats = score(hub, name, live)
    assert stats.alarms > 500
    assert stats.retrain_jobs == []  # on_drift is on, yet a fault is never retrained on
    events = watched_events(watch)
    faults = [e for e in events if e["kind"] == "fault"]
    assert faults and faults[0]["action"].startswith("none")
    assert {"x1", "x2"} <= set(faults[0]["features"]) and faults[0]["alarm_rate"] > faults[0]["alarm_rate_limit"]
    assert not [e for e in events if e["kind"] == "drift"]
    assert [e["kind"] for e in hub.recent_events(name)].count("fault") == len(faults)


def test_stationary_stream_raises_no_drift_event(monitored):
    hub, name, watch = monitored
    stats = score(hub, name, plant(20_000, 100, "2024-02-01"))
    assert stats.records == 20_000 and stats.retrain_jobs == []
    kinds = [e["kind"] for e in watched_events(watch, at_least=0, timeout=2.0)]
    assert "drift" not in kinds and "fault" not in kinds
    report = hub.monitoring_report(name)
    window = report["windows"][0]
    assert window["end_row"] == 20_000 and max(window["drift"].values()) < 1  # each feature under its threshold


def test_monitor_command_and_endpoint_show_windows_and_events(tmp_path: Path):
    import subprocess

    from framework.api import create_app
    from tests.test_api import _call
    from tests.test_streaming import EXE

    config = config_dict(tmp_path / "home", "local")
    with ExperimentHub.from_hub_config(HubConfig.model_validate(config)) as hub:
        hub.create_experiment("plant", "fault_detection", SPEC)
        hub.train("plant", plant(3000, 0))
        live = plant(3000, 100, "2024-02-01")
        live.loc[2000:, "x1"] += 0.5
        stats = score(hub, "plant", live)
        assert len(stats.retrain_jobs) == 1
        hub.wait_job(stats.retrain_jobs[0], timeout=120)
        response = _call(create_app(hub, api_key=""), "GET", "/experiments/plant/monitoring")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["windows"][0]["end_row"] == 3000 and set(body["windows"][0]["drift"]) == {f"x{i}" for i in range(6)}
        assert [e["kind"] for e in body["events"]] == ["drift"] and body["events"][0]["features"] == ["x1"]
        assert _call(create_app(hub, api_key=""), "GET", "/experiments/nope/monitoring").status_code == 404
    (tmp_path / "hub.yaml").write_text(json.dumps(config))
    html = tmp_path / "plant.html"
    shown = subprocess.run(
        [EXE, "monitor", "plant", "--config", str(tmp_path / "hub.yaml"), "--html", str(html)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "drift ratio" in shown.stdout and "x1" in shown.stdout and "retrain" in shown.stdout
    page = html.read_text()
    assert "Drift ratio per feature" in page and "plotly" in page
    assert "<script src=" not in page  # plotly.js is embedded, nothing loads from a CDN


def test_a_spec_pickled_before_the_monitoring_fields_gets_their_defaults():
    """Models pickled by 0.1.0 carry specs without ``monitoring`` and the new ``retrain`` fields."""
    from framework.FaultDetection import FaultDetectionExperiment
    from framework.monitoring import StreamMonitor

    spec = FaultDetectionExperiment.spec_model.model_validate(SPEC)
    state = spec.__getstate__()
    fields = {k: v for k, v in state["__dict__"].items() if k != "monitoring"}
    old_retrain = type(spec.retrain).__new__(type(spec.retrain))
    old_retrain.__setstate__({**spec.retrain.__getstate__(), "__dict__": {"window": 1000, "every_n_rows": None}})
    old = type(spec).__new__(type(spec))
    old.__setstate__({**state, "__dict__": fields | {"retrain": old_retrain}})
    with pytest.raises(AttributeError):  # really an old spec
        _ = old.monitoring, old.retrain.cooldown_rows
    monitor = StreamMonitor("plant", old, features=["x0", "x1"], reference=plant(5000, 0))
    assert monitor.window == 2000 and monitor.policy.cooldown_rows == 10_000 and monitor.policy.window == 1000
    assert monitor.calibrated
