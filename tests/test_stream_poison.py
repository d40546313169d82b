"""Poison messages on both stream plugins (issue 19): each is isolated from its batch and dead-lettered with its
reason and exception type, the rest of the batch is scored, a message that keeps failing is dead-lettered after
``max_redeliveries``, and a message without an id keeps a stable one (its body's hash) across redeliveries."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from framework.config import HubConfig
from framework.errors import PluginError
from framework.ExperimentHub import ExperimentHub
from framework.plugins.datastream import OutgoingMessage
from framework.records import ARROW_CONTENT_TYPE, encode_records
from framework.streaming import REASON_HEADER, TYPE_HEADER, StreamScorer, dead_letter_queue, input_queue
from framework.streaming import prediction_queue as predictions_of
from tests.conftest import require_service
from tests.test_streaming import RABBIT, config_dict, drain, pull_all, run_until

warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture(scope="module")
def process():
    from framework.datasets.process import make_process

    return make_process(n_normal=1500, n_test=200, seed=5)


def open_hub(transport: str, home: Path, queue_type: str = "classic") -> ExperimentHub:
    if transport == "rabbitmq":
        require_service("rabbitmq")
    config = config_dict(home, transport)
    if transport == "rabbitmq":
        config["plugins"]["datastream"]["config"] = {**RABBIT, "queue_type": queue_type}
    return ExperimentHub.from_hub_config(HubConfig.model_validate(config))


@pytest.fixture(params=["rabbitmq", "local"])
def trained(request, tmp_path, process):
    hub = open_hub(request.param, tmp_path / "home")
    name = f"poison-{uuid.uuid4().hex[:8]}"
    hub.create_experiment(name, "fault_detection", {"timestamp": "timestamp"})
    hub.train(name, process[0])
    yield hub, name
    hub.delete_experiment(name, purge_queues=True)
    hub.shutdown()


def rows(process, n: int = 3) -> list[dict[str, Any]]:
    test = process[1].drop(columns=["fault", "fault_type", "fault_sensor"]).head(n)
    return json.loads(encode_records(test))["records"]


def arrow_with_repeated_column(process) -> bytes:
    table = pa.Table.from_pandas(process[1].drop(columns=["fault", "fault_type", "fault_sensor"]).head(3))
    table = pa.Table.from_arrays([*table.columns, table.column("s01")], names=[*table.column_names, "s01"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def body_id(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def test_poison_messages_are_dead_lettered_and_their_batch_is_scored(trained, process):
    hub, name = trained
    good = rows(process)
    now_s = int(time.time())
    with_id = {  # each poison message sits between good ones, in the same micro-batch
        "deep": (b"[" * 200_000 + b"]" * 200_000, None),
        "beyond-float64": (json.dumps(good).replace(str(good[0]["s01"]), "1" + "0" * 400, 1).encode(), None),
        "year-1e21": (json.dumps([{**r, "timestamp": 1e30} for r in good]).encode(), None),
        "list-value": (json.dumps([{**r, "s01": [1, 2]} for r in good]).encode(), None),
        "arrow-repeated-column": (arrow_with_repeated_column(process), ARROW_CONTENT_TYPE),
        "good-0": (json.dumps(good).encode(), None),
        "epoch-us": (json.dumps([{**r, "timestamp": now_s * 10**6} for r in good]).encode(), None),
        "epoch-ns": (json.dumps([{**r, "timestamp": now_s * 10**9} for r in good]).encode(), None),
        "good-1": (json.dumps(good[::-1]).encode(), None),
    }
    anonymous = json.dumps(good[:2]).encode()  # no message_id anywhere: its id is the body's hash
    messages = [
        OutgoingMessage(body, message_id=key, content_type=kind or "application/json")
        for key, (body, kind) in with_id.items()
    ]
    stream = hub.get_plugin("datastream")
    stream.publish(input_queue(name), [*messages, OutgoingMessage(anonymous)])
    stats = run_until(hub, name, expected=5, batch_size=50)
    predictions = drain(stream, predictions_of(name))
    assert set(predictions) == {"good-0", "good-1", "epoch-us", "epoch-ns", body_id(anonymous)}
    expected_time = pd.Timestamp(now_s, unit="s").isoformat()
    assert predictions["epoch-us"]["records"][0]["timestamp"].startswith(expected_time)
    assert predictions["epoch-ns"]["records"][0]["timestamp"].startswith(expected_time)
    dead = {d.message_id: d.headers for d in pull_all(stream, dead_letter_queue(name))}
    assert set(dead) == {"deep", "beyond-float64", "year-1e21", "list-value", "arrow-repeated-column"}
    assert "depth limit" in dead["deep"][REASON_HEADER]
    assert "infinity" in dead["beyond-float64"][REASON_HEADER]
    assert "outside the years 1677-2262" in dead["year-1e21"][REASON_HEADER]
    assert dead["year-1e21"]["x-error-field"] == "timestamp"
    assert "column names repeat" in dead["arrow-repeated-column"][REASON_HEADER]
    assert {headers[TYPE_HEADER] for headers in dead.values()} == {"DataValidationError"}
    assert stats.dead_lettered == 5 and stream.queue_depth(input_queue(name)) == 0


class FaultyModels:
    """The hub as a ``ModelSource`` whose served model raises ``RuntimeError`` on one poisoned reading."""

    POISON = 123456.0

    def __init__(self, hub: ExperimentHub) -> None:
        self.hub = hub

    def load(self, name: str, version: int | None = None) -> Any:
        return FaultyModel(self.hub.load(name, version=version))

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.hub, attribute)


class FaultyModel:
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_stream(self, frame: pd.DataFrame, state: Any) -> Any:
        if (frame["s01"] == FaultyModels.POISON).any():
            raise RuntimeError("the model's own bug")
        return self.model.predict_stream(frame, state)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.model, attribute)


def scorer_run(scorer: StreamScorer, stream, name: str, settled: int, timeout: float = 90) -> None:
    """Run ``scorer`` until ``settled`` messages are predicted or dead-lettered; the input queue is then empty."""
    stop = threading.Event()
    thread = threading.Thread(target=scorer.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + timeout
    out = (predictions_of(name), dead_letter_queue(name))
    while time.monotonic() < deadline and sum(stream.queue_depth(queue) for queue in out) < settled:
        time.sleep(0.2)
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert stream.queue_depth(input_queue(name)) == 0


def test_an_exception_of_any_kind_dead_letters_only_its_message(trained, process):
    hub, name = trained
    good = rows(process)
    poisoned = [{**good[0], "s01": FaultyModels.POISON}, *good[1:]]
    stream = hub.get_plugin("datastream")
    bodies = {"a": good, "poisoned": poisoned, "b": good[::-1]}
    messages = [OutgoingMessage(json.dumps(body).encode(), message_id=key) for key, body in bodies.items()]
    stream.publish(input_queue(name), messages)
    scorer_run(StreamScorer(FaultyModels(hub), stream, name, batch_size=10), stream, name, settled=3)
    assert set(drain(stream, predictions_of(name))) == {"a", "b"}
    (dead,) = pull_all(stream, dead_letter_queue(name))
    assert dead.message_id == "poisoned" and dead.headers[TYPE_HEADER] == "RuntimeError"
    assert "the model's own bug" in dead.headers[REASON_HEADER]


@pytest.mark.parametrize("transport, queue_type", [("local", "classic"), ("rabbitmq", "quorum")])
def test_the_transport_counted_redeliveries_past_the_limit_dead_letter(tmp_path, process, transport, queue_type):
    """The local queue and RabbitMQ quorum queues count deliveries: the scorer needs no memory of its own (a
    message that killed its scorer five times is dead-lettered by the next one)."""
    hub = open_hub(transport, tmp_path / "home", queue_type)
    name = f"redeliver-{uuid.uuid4().hex[:8]}"
    try:
        hub.create_experiment(name, "fault_detection", {"timestamp": "timestamp"})
        hub.train(name, process[0])
        stream = hub.get_plugin("datastream")
        body = json.dumps(rows(process)).encode()
        stream.publish(input_queue(name), [OutgoingMessage(body, message_id="again")])
        for _ in range(6):  # six deliveries that never settled (a scorer that died on it each time)
            (delivery,) = stream.pull_data(input_queue(name), max_messages=1, timeout=5)
            assert delivery.message_id == "again"
            stream.reject([delivery], requeue=True)
        stream.publish(input_queue(name), [OutgoingMessage(body, message_id="fresh")])
        scorer_run(StreamScorer(hub, stream, name, max_redeliveries=5), stream, name, settled=2)
        assert set(drain(stream, predictions_of(name))) == {"fresh"}
        (dead,) = pull_all(stream, dead_letter_queue(name))
        assert dead.message_id == "again"
        assert "redelivered 6 times without being scored" in dead.headers[REASON_HEADER]
    finally:
        hub.delete_experiment(name, purge_queues=True)
        hub.shutdown()


class FailingPublishes:
    """The stream plugin, except that publishing the prediction of one input always fails."""

    def __init__(self, stream: Any, poisoned_id: str) -> None:
        self.stream, self.poisoned_id = stream, poisoned_id

    def publish_topic(self, topic: str, messages: list[OutgoingMessage]) -> None:
        if any(message.message_id == self.poisoned_id for message in messages):
            raise PluginError("the broker refused this prediction", plugin_type="datastream")
        self.stream.publish_topic(topic, messages)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.stream, attribute)


def test_on_a_classic_queue_the_scorer_counts_failed_batches(trained, process):
    """RabbitMQ classic queues only say ``redelivered``: the scorer counts the failed batches of each message."""
    hub, name = trained
    stream = hub.get_plugin("datastream")
    body = json.dumps(rows(process)).encode()
    stream.publish(input_queue(name), [OutgoingMessage(body, message_id="stuck")])
    scorer = StreamScorer(hub, FailingPublishes(stream, "stuck"), name, batch_size=1, max_redeliveries=2)
    scorer_run(scorer, stream, name, settled=1)
    (dead,) = pull_all(stream, dead_letter_queue(name))
    assert dead.message_id == "stuck"
    assert "redelivered 3 times" in dead.headers[REASON_HEADER]
    assert "the broker refused this prediction" in dead.headers[REASON_HEADER]  # the last error, for the operator


def test_a_far_future_record_is_dead_lettered_and_the_forecaster_goes_on(tmp_path):
    """One record at 2262 took 455 s of CPU and moved the scorer's forecaster past every later real row: now it
    is refused at once (10x the horizon is the default limit) and the real rows after it are scored and absorbed."""
    from framework.datasets.series import make_series

    series = make_series(n=24 * 7 * 5, seed=4).drop(columns=["is_anomaly"])
    history, live = series.iloc[: 24 * 7 * 4], series.iloc[24 * 7 * 4 :]
    config = config_dict(tmp_path / "home", "local")
    config["experiments"] = [
        {"name": "time_series", "module": "framework.TimeSeriesAnalysis", "class": "TimeSeriesExperiment"}
    ]
    with ExperimentHub.from_hub_config(HubConfig.model_validate(config)) as hub:
        hub.create_experiment("load", "time_series", {"model": {"name": "ets"}, "horizon": 24})
        hub.train("load", history)
        stream = hub.get_plugin("datastream")
        first = hub.publish_records("load", live.iloc[:24], batch_size=24)
        bomb = {"timestamp": "2262-01-01T00:00:00Z", "value": 1.0}
        stream.publish(input_queue("load"), [OutgoingMessage(json.dumps([bomb]).encode(), message_id="2262")])
        later = hub.publish_records("load", live.iloc[24:], batch_size=24)
        scorer = StreamScorer(hub, stream, "load", batch_size=1)
        scorer_run(scorer, stream, "load", settled=len(first) + 1 + len(later))
        assert set(drain(stream, predictions_of("load"))) == set(first) | set(later)
        (dead,) = pull_all(stream, dead_letter_queue("load"))
        assert dead.message_id == "2262" and dead.headers["x-error-field"] == "timestamp"
        assert "over the limit of 240 (max_steps_ahead" in dead.headers[REASON_HEADER]
        assert scorer._model.index_[-1] == live["timestamp"].iloc[-1]  # it absorbed the real rows after the bomb
