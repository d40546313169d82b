"""The stream scorer end to end: RabbitMQ (with an independent pika client) and the embedded local stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pika
import pytest

from framework.config import HubConfig
from framework.errors import PluginError
from framework.ExperimentHub import ExperimentHub
from framework.plugins.datastream import OutgoingMessage
from framework.records import ARROW_CONTENT_TYPE, decode_records, encode_frame, encode_records
from framework.streaming import REASON_HEADER, input_queue, prediction_queue
from tests.conftest import require_service

warnings.filterwarnings("ignore", category=UserWarning)

SPEC = {"model": {"name": "pca"}, "timestamp": "timestamp"}
RABBIT = {"host": "127.0.0.1", "port": 5672, "username": "guest", "password": "guest"}
EXE = str(Path(sys.executable).with_name("experimenthub"))


def config_dict(home: Path, transport: str) -> dict:
    datastream = ({"type": "rabbitmq", "config": RABBIT} if transport == "rabbitmq"
                  else {"type": "local", "config": {"path": str(home / "stream.db"), "visibility_timeout": 5}})
    return {
        "version": "1.0",
        "global": {"state_dir": str(home)},
        "plugins": {"mlops": {"type": "mlflow", "config": {"mlflow_uri": f"sqlite:///{home / 'mlflow.db'}"}},
                    "datastream": datastream},
        "experiments": [{"name": "fault_detection", "module": "framework.FaultDetection",
                         "class": "FaultDetectionExperiment"}],
    }


@pytest.fixture(scope="module")
def process():
    from framework.datasets.process import make_process

    return make_process(n_normal=1500, n_test=1000, seed=11)


def open_trained(transport: str, tmp_path: Path, process, spec: dict = SPEC):
    """A hub with a trained fault-detection experiment under a unique name; queues removed afterwards."""
    if transport == "rabbitmq":
        require_service("rabbitmq")
    home = tmp_path / "home"
    hub = ExperimentHub.from_hub_config(HubConfig.model_validate(config_dict(home, transport)))
    name = f"pump-{uuid.uuid4().hex[:8]}"
    hub.create_experiment(name, "fault_detection", spec)
    hub.train(name, process[0])
    yield hub, name, transport, home
    stream = hub.get_plugin("datastream")
    for queue in (input_queue(name), prediction_queue(name)):
        stream.delete_queue(queue)
    hub.shutdown()


@pytest.fixture(params=["rabbitmq", "local"])
def trained(request, tmp_path, process):
    yield from open_trained(request.param, tmp_path, process)


DYNAMIC_SPEC = {"model": {"name": "pca", "params": {"lags": 2}}, "timestamp": "timestamp",
                "threshold": {"persistence": {"k": 3, "n": 5}}}


VAR_SPEC = {**DYNAMIC_SPEC, "model": {"name": "var_innovation"}}  # lags and an EWMA carried across batches


@pytest.fixture(params=[("rabbitmq", "pca"), ("local", "pca"), ("rabbitmq", "var_innovation"),
                        ("local", "var_innovation")], ids="-".join)
def trained_dynamic(request, tmp_path, process):
    """Dynamic PCA (lags) or var_innovation, with k-of-n persistence: all look back on earlier rows."""
    transport, model = request.param
    yield from open_trained(transport, tmp_path, process, DYNAMIC_SPEC if model == "pca" else VAR_SPEC)


@pytest.fixture
def trained_rabbitmq(tmp_path, process):
    yield from open_trained("rabbitmq", tmp_path, process)


def test_stream_scores_huge_and_missing_readings_and_names_them(trained, process):
    hub, name, _, _ = trained
    test = process[1].drop(columns=["fault", "fault_type"]).head(40).reset_index(drop=True)
    test["s01"] = test["s01"].astype(float)
    test.loc[5, "s01"] = 1e155
    test.loc[6, "s02"] = float("nan")  # published as null: a missing reading
    ids = hub.publish_records(name, test, batch_size=10)
    run_until(hub, name, expected=len(ids))
    predictions = drain(hub.get_plugin("datastream"), prediction_queue(name))
    assert set(predictions) == set(ids)  # nothing dead-lettered: every finite or missing reading scores
    rows = [r for mid in ids for r in predictions[mid]["records"]]
    assert rows[5]["is_anomaly"] and rows[5]["top_feature"] == "s01"
    assert rows[6]["missing_features"] == "s02"
    assert sum(r["missing_features"] != "" for r in rows) == 1


def test_stream_scores_every_message_and_skips_bad_ones(trained, process):
    hub, name, _, _ = trained
    test = process[1].drop(columns=["fault", "fault_type"])
    ids = hub.publish_records(name, test, batch_size=50)
    bad = {
        "not-json": b"{not json",
        "missing-column": encode_records(test.head(3).drop(columns=["s04"]), message_id="missing-column"),
        "non-numeric": encode_records(test.head(3).assign(s02="high"), message_id="non-numeric"),
        "too-large": b"[" + b'{"s01": 1.0},' * 40000 + b'{"s01": 1.0}]',
    }
    stream = hub.get_plugin("datastream")
    stream.publish(input_queue(name), [OutgoingMessage(body, message_id=key) for key, body in bad.items()])
    stats = run_until(hub, name, expected=len(ids), max_message_bytes=200_000)
    predictions = drain(stream, prediction_queue(name))
    assert set(predictions) == set(ids)  # every good message has its prediction, keyed by the input id
    assert sum(len(p["records"]) for p in predictions.values()) == len(test)
    assert all(p["input_id"] == mid for mid, p in predictions.items())
    assert stats.dead_lettered == 4
    dead = {d.message_id: d.headers for d in pull_all(stream, input_queue(name) + ".dead-letter")}
    assert set(dead) == set(bad)
    assert "not JSON" in dead["not-json"][REASON_HEADER]
    assert "missing" in dead["missing-column"][REASON_HEADER] and dead["missing-column"]["x-error-field"] == "s04"
    assert "non-numeric" in dead["non-numeric"][REASON_HEADER]
    assert "exceeds the limit" in dead["too-large"][REASON_HEADER]
    assert stream.queue_depth(input_queue(name)) == 0


@pytest.mark.parametrize("fmt", ["split", "arrow"])
def test_split_and_arrow_messages_are_scored_and_answered_in_their_format(trained, process, fmt):
    hub, name, _, _ = trained
    test = process[1].drop(columns=["fault", "fault_type", "fault_sensor"]).head(200)
    ids = hub.publish_records(name, test, batch_size=40, fmt=fmt)
    run_until(hub, name, expected=len(ids))
    stream = hub.get_plugin("datastream")
    answers = {}
    for delivery in pull_all(stream, prediction_queue(name)):
        message_id, frame = decode_records(delivery.body, delivery.content_type)
        assert delivery.content_type == (ARROW_CONTENT_TYPE if fmt == "arrow" else "application/json")
        answers[message_id] = frame
    assert set(answers) == set(ids)
    streamed = pd.concat([answers[mid] for mid in ids], ignore_index=True)
    offline = hub.predict(name, test)
    np.testing.assert_allclose(streamed["score"], offline["score"])
    assert streamed["is_anomaly"].tolist() == offline["is_anomaly"].tolist()


def test_bad_split_and_arrow_messages_go_to_the_dead_letter_queue(trained, process):
    hub, name, _, _ = trained
    test = process[1].drop(columns=["fault", "fault_type", "fault_sensor"]).head(3)
    good = hub.publish_records(name, test, batch_size=3, fmt="split")
    split = json.loads(encode_frame(test, "split")[0])
    short_row = {**split, "data": [split["data"][0], split["data"][1][:-1]]}
    no_s04 = json.loads(encode_frame(test.drop(columns=["s04"]), "split")[0])
    arrow_body, _ = encode_frame(test.drop(columns=["s04"]), "arrow")
    bad = {
        "not-arrow": OutgoingMessage(b"\x00\x01 surely not arrow", content_type=ARROW_CONTENT_TYPE),
        "short-row": OutgoingMessage(json.dumps(short_row).encode()),
        "no-s04": OutgoingMessage(json.dumps(no_s04).encode()),
        "arrow-no-s04": OutgoingMessage(arrow_body, content_type=ARROW_CONTENT_TYPE),
        "nine-mib": OutgoingMessage(b"[" + b'{"s01": 1.0},' * (9 * 1024 * 1024 // 13) + b'{"s01": 1.0}]'),
    }
    for key, message in bad.items():
        message.message_id = key
    stream = hub.get_plugin("datastream")
    stream.publish(input_queue(name), list(bad.values()))
    stats = run_until(hub, name, expected=len(good))
    assert set(drain(stream, prediction_queue(name))) == set(good)  # the stream went on
    assert stats.dead_lettered == len(bad)
    dead = {d.message_id: d.headers for d in pull_all(stream, input_queue(name) + ".dead-letter")}
    assert set(dead) == set(bad)
    assert "not an Arrow IPC stream" in dead["not-arrow"][REASON_HEADER]
    assert dead["short-row"]["x-error-field"] == "data.1"
    assert "24 value(s); 25 columns" in dead["short-row"][REASON_HEADER]
    assert dead["no-s04"]["x-error-field"] == "s04" and dead["arrow-no-s04"]["x-error-field"] == "s04"
    assert "exceeds the limit" in dead["nine-mib"][REASON_HEADER]


def test_stream_results_do_not_depend_on_batching(trained_dynamic, process):
    """Lags, var_innovation's EWMA and k-of-n persistence carry across micro-batches: batches of 1, 7 and 100 rows
    equal one predict, alarms exactly, scores to 1e-12 (BLAS rounds a row's last bits by the batch's row count)."""
    hub, name, _, _ = trained_dynamic
    test = process[1].drop(columns=["fault", "fault_type", "fault_sensor"]).iloc[150:450]
    offline = hub.predict(name, test).reset_index(drop=True)
    assert offline["is_anomaly"].any() and not offline["is_anomaly"].all()
    stream = hub.get_plugin("datastream")
    for rows in (1, 7, 100):
        ids = hub.publish_records(name, test, batch_size=rows)
        run_until(hub, name, expected=len(ids), batch_size=1)  # one message per micro-batch: `rows` rows
        predictions = drain(stream, prediction_queue(name))
        streamed = pd.concat([pd.DataFrame(predictions[mid]["records"]) for mid in ids], ignore_index=True)
        assert streamed["is_anomaly"].tolist() == offline["is_anomaly"].tolist(), rows
        np.testing.assert_allclose(streamed["score"], offline["score"], rtol=1e-12)  # BLAS rounding only


def test_early_producer_loses_nothing(tmp_path, process):
    """Queues are declared with the experiment: a pika client publishing before any scorer ran loses nothing."""
    require_service("rabbitmq")
    home = tmp_path / "home"
    hub = ExperimentHub.from_hub_config(HubConfig.model_validate(config_dict(home, "rabbitmq")))
    name = f"early-{uuid.uuid4().hex[:8]}"
    try:
        hub.create_experiment(name, "fault_detection", SPEC)
        test = process[1].drop(columns=["fault", "fault_type", "fault_sensor"]).head(300)
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
        channel = connection.channel()
        channel.confirm_delivery()
        sent = [f"early-{start}" for start in range(0, len(test), 50)]
        for message_id, start in zip(sent, range(0, len(test), 50), strict=True):  # mandatory: no silent drop
            body = encode_frame(test.iloc[start:start + 50], "split", message_id=message_id)[0]
            channel.basic_publish("", input_queue(name), body, pika.BasicProperties(
                content_type="application/json", delivery_mode=2), mandatory=True)
        connection.close()
        hub.train(name, process[0])  # trained after the records arrived, scored later
        run_until(hub, name, expected=len(sent))
        predictions = drain(hub.get_plugin("datastream"), prediction_queue(name))
        assert set(predictions) == set(sent)
        assert sum(len(p["data"]) for p in predictions.values()) == len(test)
        hub.delete_experiment(name)  # queues stay by default
        assert hub.get_plugin("datastream").queue_depth(input_queue(name)) == 0
    finally:
        hub.get_plugin("datastream").delete_queue(input_queue(name))
        hub.get_plugin("datastream").delete_queue(prediction_queue(name))
        hub.shutdown()


def test_delete_with_purge_queues_removes_them(tmp_path):
    hub = ExperimentHub.from_hub_config(HubConfig.model_validate(config_dict(tmp_path / "home", "local")))
    with hub:
        hub.create_experiment("gone", "fault_detection", SPEC)
        stream = hub.get_plugin("datastream")
        assert stream.queue_depth(input_queue("gone")) == 0  # declared at creation
        hub.delete_experiment("gone", purge_queues=True)
        with pytest.raises(PluginError):
            stream.publish(input_queue("gone"), [OutgoingMessage(b"[]")])


def test_watchers_see_predictions_that_the_consumer_still_receives(trained, process, tmp_path):
    hub, name, transport, home = trained
    stream = hub.get_plugin("datastream")
    watch = stream.watch(prediction_queue(name))  # opened before anything is published
    test = process[1].drop(columns=["fault", "fault_type", "fault_sensor"]).head(300)
    ids = hub.publish_records(name, test, batch_size=30)
    run_until(hub, name, expected=len(ids))
    watched: dict[str, object] = {}
    deadline = time.monotonic() + 30
    while len(watched) < len(ids) and time.monotonic() < deadline:
        watched.update({d.message_id: d for d in watch.poll(max_messages=100, timeout=0.5)})
    watch.close()
    assert set(watched) == set(ids)
    assert set(drain(stream, prediction_queue(name))) == set(ids)  # the downstream consumer lost nothing

    config = tmp_path / "hub.yaml"
    config.write_text(json.dumps(config_dict(home, transport)))
    tail = subprocess.Popen([EXE, "tail", name, "--config", str(config), "--count", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    scorer = threading.Thread(target=lambda: hub.stream(name, stop, batch_size=5))
    scorer.start()
    published: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while tail.poll() is None and time.monotonic() < deadline:  # until tail has shown its 5 rows
            published += hub.publish_records(name, test.head(5), batch_size=5)
            time.sleep(0.5)
    finally:
        stop.set()
        scorer.join(timeout=60)
        tail.kill()
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    assert f"{name} predictions" in out and "score" in out
    assert set(collect(stream, prediction_queue(name), len(published), timeout=30)) == set(published)


def test_scorer_logs_monitoring_metrics_to_one_run(tmp_path, process, caplog):
    with ExperimentHub.from_hub_config(HubConfig.model_validate(config_dict(tmp_path / "home", "local"))) as hub:
        hub.create_experiment("pump", "fault_detection", SPEC)
        hub.train("pump", process[0])
        ids = hub.publish_records("pump", process[1].drop(columns=["fault", "fault_type"]).head(400), batch_size=20)
        with caplog.at_level("INFO", logger="framework.streaming"):
            stats = run_until(hub, "pump", expected=len(ids), batch_size=2, log_every_s=0.05)
        runs = hub.store.mlops.search_runs("pump", filter_string="tags.`experimenthub.kind` = 'monitor'")
        assert len(runs) == 1 and runs[0].status == "FINISHED"
        metrics = runs[0].metrics
        assert {"rows_scored", "rows_per_s", "alarm_rate", "dead_lettered", "consumer_lag"} <= set(metrics)
        assert metrics["model_version"] == 1 and 0 <= metrics["alarm_rate"] <= 1
        assert stats.alarms > 0
        assert any("alarm rate" in r.getMessage() and "version 1" in r.getMessage() for r in caplog.records)


def test_competing_consumers_share_the_queue(trained, process):
    hub, name, _, _ = trained
    stop = threading.Event()
    stats: list = []
    workers = [threading.Thread(target=lambda: stats.append(hub.stream(name, stop, batch_size=5)))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    monitor = "tags.`experimenthub.kind` = 'monitor'"
    deadline = time.monotonic() + 60  # both scorers are consuming once each opened its monitoring run
    while len(hub.store.mlops.search_runs(name, filter_string=monitor)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    ids = hub.publish_records(name, process[1].drop(columns=["fault", "fault_type"]), batch_size=20)
    predictions = collect(hub.get_plugin("datastream"), prediction_queue(name), len(ids), timeout=120)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    assert set(predictions) == set(ids)
    assert sum(s.messages for s in stats) >= len(ids)
    assert len(stats) == 2 and all(s.messages > 0 for s in stats), [s.messages for s in stats]  # both took work


def test_independent_pika_client_round_trip(trained_rabbitmq, process):
    hub, name, _, _ = trained_rabbitmq
    hub.get_plugin("datastream").create_queue(input_queue(name))
    hub.get_plugin("datastream").create_queue(prediction_queue(name))
    test = process[1].drop(columns=["fault", "fault_type"]).head(300)
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    channel = connection.channel()
    channel.confirm_delivery()
    sent = []
    for start in range(0, len(test), 100):  # an envelope, and a bare list with a message id property
        chunk = test.iloc[start:start + 100]
        message_id = f"pika-{start}"
        body = (encode_records(chunk, message_id=message_id) if start == 0
                else chunk.to_json(orient="records", date_format="iso").encode())
        channel.basic_publish("", input_queue(name), body, pika.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id=message_id))
        sent.append(message_id)
    run_until(hub, name, expected=len(sent))
    received = {}
    for _ in range(50):
        method, properties, body = channel.basic_get(prediction_queue(name), auto_ack=True)
        if method is None:
            break
        payload = json.loads(body)
        received[payload["input_id"]] = payload
        assert properties.content_type == "application/json"
    connection.close()
    assert set(received) == set(sent)
    assert sum(len(p["records"]) for p in received.values()) == len(test)
    assert {"score", "threshold", "is_anomaly", "top_feature"} <= set(received["pika-0"]["records"][0])


@pytest.mark.slow
def test_kill_9_mid_batch_then_restart_loses_nothing(trained, process, tmp_path):
    hub, name, transport, home = trained
    config = tmp_path / "hub.yaml"
    config.write_text(json.dumps(config_dict(home, transport)))  # JSON is YAML
    test = process[1].drop(columns=["fault", "fault_type"])
    ids = hub.publish_records(name, test, batch_size=5)  # 200 small messages
    scorer = start_scorer(config, name)
    stream = hub.get_plugin("datastream")
    predictions = collect(stream, prediction_queue(name), 20, timeout=120)  # it is busy scoring now
    os.kill(scorer.pid, signal.SIGKILL)
    scorer.wait(timeout=30)
    restarted = start_scorer(config, name)
    predictions.update(collect(stream, prediction_queue(name), len(ids) - len(predictions), timeout=180,
                               known=set(predictions)))
    restarted.send_signal(signal.SIGTERM)  # graceful: finishes its batch, acks, exits 0
    assert restarted.wait(timeout=60) == 0, restarted.stderr.read()
    assert set(predictions) == set(ids)
    assert stream.queue_depth(input_queue(name)) == 0


@pytest.mark.slow
def test_reconnects_after_broker_restart(trained_rabbitmq, process):
    hub, name, _, _ = trained_rabbitmq
    test = process[1].drop(columns=["fault", "fault_type"])
    first = hub.publish_records(name, test.iloc[:500], batch_size=10)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: hub.stream(name, stop, batch_size=5))
    thread.start()
    stream = hub.get_plugin("datastream")
    seen = collect(stream, prediction_queue(name), 10, timeout=60)
    try:
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
        time.sleep(2)
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], capture_output=True, timeout=120)
    second = hub.publish_records(name, test.iloc[500:], batch_size=10)
    seen.update(collect(stream, prediction_queue(name), len(first) + len(second) - len(seen), timeout=180,
                        known=set(seen)))
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert set(seen) == set(first) | set(second)


# -- helpers ------------------------------------------------------------------------------------------------
def run_until(hub, name, expected, **options):
    """Run the scorer in a thread until ``expected`` predictions exist, then stop it and return its stats."""
    stop = threading.Event()
    result = {}
    stream = hub.get_plugin("datastream")
    stream.create_queue(prediction_queue(name))
    thread = threading.Thread(target=lambda: result.setdefault("stats", hub.stream(name, stop, **options)))
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and stream.queue_depth(prediction_queue(name)) < expected:
        time.sleep(0.2)
    time.sleep(0.5)  # let it finish dead-lettering anything left
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the scorer did not stop"
    return result["stats"]


def pull_all(stream, queue):
    deliveries = []
    while batch := stream.pull_data(queue, max_messages=500, timeout=1.0):
        deliveries.extend(batch)
        stream.ack(batch)
    return deliveries


def drain(stream, queue):
    return {(payload := json.loads(d.body))["input_id"]: payload for d in pull_all(stream, queue)}


def collect(stream, queue, at_least, timeout, known=frozenset()):
    """Read predictions (acking them) until ``at_least`` new distinct input ids arrived."""
    stream.create_queue(queue)  # the scorer may not have declared it yet
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(found) < at_least and time.monotonic() < deadline:
        batch = stream.pull_data(queue, max_messages=200, timeout=0.5)
        for delivery in batch:
            payload = json.loads(delivery.body)
            if payload["input_id"] not in known:
                found[payload["input_id"]] = payload
        stream.ack(batch)
    return found


def start_scorer(config: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([EXE, "stream", name, "--config", str(config), "--batch-size", "5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_retrain_policy_submits_a_job_from_the_stream(tmp_path, process):
    home = tmp_path / "home"
    hub = ExperimentHub.from_hub_config(HubConfig.model_validate(config_dict(home, "local")))
    with hub:
        hub.create_experiment("pump", "fault_detection", {**SPEC, "retrain": {"every_n_rows": 600, "window": 800}})
        hub.train("pump", process[0])
        normal = process[0].iloc[:700]  # normal operation keeps flowing in
        ids = hub.publish_records("pump", normal, batch_size=100)
        stats = run_until(hub, "pump", expected=len(ids))
        assert len(stats.retrain_jobs) == 1
        result = hub.wait_job(stats.retrain_jobs[0], timeout=120)
        assert result["version"] == 2
        params = hub.store.mlops.get_run(result["run_id"]).params
        assert params["n_rows"] == "800"  # the snapshot plus the recent rows it did not flag, cut to the window


def test_forecasting_stream_updates_the_model_state_without_refit(tmp_path):
    from framework.datasets.series import make_series
    from framework.streaming import StreamScorer

    series = make_series(n=24 * 7 * 6, seed=4)
    history, live = series.iloc[: 24 * 7 * 4], series.iloc[24 * 7 * 4:]
    config = config_dict(tmp_path / "home", "local")
    config["experiments"] = [{"name": "time_series", "module": "framework.TimeSeriesAnalysis",
                              "class": "TimeSeriesExperiment"}]
    with ExperimentHub.from_hub_config(HubConfig.model_validate(config)) as hub:
        hub.create_experiment("load", "time_series", {"model": {"name": "ets"}, "horizon": 24})
        hub.train("load", history)
        served = hub.load("load")
        fitted_end = served.index_[-1]
        ids = hub.publish_records("load", live.drop(columns=["is_anomaly"]), batch_size=24)
        scorer = StreamScorer(hub, hub.get_plugin("datastream"), "load", batch_size=3)
        stop = threading.Event()
        thread = threading.Thread(target=scorer.run, args=(stop,))
        thread.start()
        predictions = collect(hub.get_plugin("datastream"), prediction_queue("load"), len(ids), timeout=120)
        stop.set()
        thread.join(timeout=60)
        assert set(predictions) == set(ids)
        assert scorer._model.index_[-1] == live["timestamp"].iloc[-1]  # the stream's copy absorbed every row
        assert hub.load("load").index_[-1] == fitted_end  # the hub's cached champion was not touched
        scored = pd.concat([pd.DataFrame(p["records"]) for p in predictions.values()])
        flagged = set(pd.to_datetime(scored.loc[scored["is_anomaly"], "timestamp"]))
        labelled = set(live.loc[live["is_anomaly"] == 1, "timestamp"])
        assert flagged & labelled  # the injected anomalies are found as they stream in
        assert len(flagged - labelled) <= 10  # and seasonality raises few false alarms


def test_stream_alarms_equal_batch_alarms_across_message_boundaries(tmp_path, process):
    """Persistence (k of n) looks back across micro-batches, so streaming in tiny messages changes nothing."""
    config = config_dict(tmp_path / "home", "local")
    with ExperimentHub.from_hub_config(HubConfig.model_validate(config)) as hub:
        spec = {**SPEC, "threshold": {"persistence": {"k": 3, "n": 5}}}
        hub.create_experiment("pump", "fault_detection", spec)
        hub.train("pump", process[0])
        test = process[1].drop(columns=["fault", "fault_type", "fault_sensor"], errors="ignore").head(600)
        batch = hub.predict("pump", test)
        ids = hub.publish_records("pump", test, batch_size=3)  # alarm windows straddle messages
        run_until(hub, "pump", expected=len(ids), batch_size=4)
        predictions = drain(hub.get_plugin("datastream"), prediction_queue("pump"))
        streamed = pd.concat([pd.DataFrame(predictions[mid]["records"]) for mid in ids], ignore_index=True)
        assert streamed["is_anomaly"].any()
        assert streamed["is_anomaly"].tolist() == batch["is_anomaly"].tolist()
        np.testing.assert_allclose(streamed["score"], batch["score"])
