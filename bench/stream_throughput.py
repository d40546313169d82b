"""Stream scoring through RabbitMQ for three message formats, each next to its ceilings, in one run.

For records JSON, split JSON and Arrow IPC (100-record messages of the same rows), three paths move the same
bodies from a pre-filled durable queue to another, publishing persistently with confirms and acking after:

- **raw**: plain kombu moves each body unchanged (no decoding, no model): the transport's ceiling;
- **minimal**: a hand-written kombu consumer that decodes (orjson or Arrow), scores with bare numpy PCA
  (the trained model's own scaler, loadings and limits), encodes the scores in the same format and publishes;
- **scorer**: ``experimenthub stream`` (a separate process) with the default fault-detection model (PCA),
  answering in the input's format; also with ``--consumers 2`` for records and Arrow.

Each figure is the median of ``RUNS`` runs, timed from the first message taken to the last published.
Goals (issue 14): scorer ≥ 0.7 × minimal for records and Arrow; Arrow ≥ 150k records/s, records ≥ 75k.
Run: ``.venv/bin/python bench/stream_throughput.py`` (RabbitMQ on 127.0.0.1:5672); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import kombu
import numpy as np
import orjson

from framework.config import HubConfig
from framework.ExperimentHub import ExperimentHub
from framework.plugins.datastream import OutgoingMessage, input_queue, prediction_queue
from framework.records import ARROW_CONTENT_TYPE, FORMATS, encode_frame

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
PER_MESSAGE = 100


def hub_config(home: Path) -> dict:
    return {
        "version": "1.0",
        "global": {"state_dir": str(home)},
        "plugins": {
            "mlops": {"type": "mlflow", "config": {"mlflow_uri": f"sqlite:///{home / 'mlflow.db'}"}},
            "datastream": {"type": "rabbitmq", "config": {"host": "127.0.0.1", "port": 5672}},
        },
        "experiments": [
            {"name": "fault_detection", "module": "framework.FaultDetection", "class": "FaultDetectionExperiment"}
        ],
    }


def content_type(fmt: str) -> str:
    return ARROW_CONTENT_TYPE if fmt == "arrow" else "application/json"


# -- raw and minimal: one kombu consumer, a separate confirmed publisher ------------------------------------------
def move(bodies: list[bytes], fmt: str, transform: Callable[[bytes], bytes] | None) -> float:
    """Fill a source queue with ``bodies``, then move each to a sink (transformed), confirmed, then acked."""
    source, sink = f"bench-src-{uuid.uuid4().hex[:6]}", f"bench-sink-{uuid.uuid4().hex[:6]}"
    with kombu.Connection(BROKER, transport_options={"confirm_publish": True}) as out, kombu.Connection(BROKER) as inp:
        queues = [kombu.Queue(q, routing_key=q, durable=True) for q in (source, sink)]
        producer = out.Producer(serializer=None)
        for queue in queues:
            queue(out.default_channel).declare()

        def send(body: bytes, routing_key: str) -> None:
            producer.publish(
                body,
                routing_key=routing_key,
                content_type=content_type(fmt),
                content_encoding="binary",
                delivery_mode=2,
            )

        for body in bodies:
            send(body, source)
        moved = 0
        started = time.perf_counter()

        def on_message(message: kombu.Message) -> None:
            nonlocal moved
            send(message.body if transform is None else transform(message.body), sink)
            message.ack()
            moved += 1

        with inp.Consumer(queues[0], on_message=on_message, prefetch_count=1000, auto_declare=False):
            while moved < len(bodies):
                inp.drain_events(timeout=10)
        elapsed = time.perf_counter() - started
        for queue in queues:
            queue(out.default_channel).delete()
    return elapsed


def minimal_transform(model, fmt: str) -> Callable[[bytes], bytes]:
    """Decode, score with bare numpy PCA (combined index of SPE and T²), encode: what a hand-written consumer does."""
    import pyarrow as pa

    features = list(model.features_in_)
    det = model.detector_
    center, scale, mean, loadings = model.center_, model.scale_, det.mean_, det.components_
    eigenvalues, spe_limit, t2_limit, threshold = det.eigenvalues_, det.spe_limit_, det.t2_limit_, model.threshold_

    def score(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Z = (X - center) / scale - mean
        T = Z @ loadings
        residual = Z - T @ loadings.T
        combined = (
            np.einsum("ij,ij->i", residual, residual) / spe_limit + np.einsum("ij,ij->i", T, T / eigenvalues) / t2_limit
        )
        return combined, combined > threshold

    def transform(body: bytes) -> bytes:
        if fmt == "arrow":
            table = pa.ipc.open_stream(body).read_all()
            values, alarms = score(np.column_stack([table.column(f).to_numpy() for f in features]))
            out = pa.table({"score": values, "is_anomaly": alarms})
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, out.schema) as writer:
                writer.write_table(out)
            return sink.getvalue().to_pybytes()
        payload = orjson.loads(body)
        if fmt == "split":
            where = [payload["columns"].index(f) for f in features]
            X = np.array([[row[i] for i in where] for row in payload["data"]], dtype=np.float64)
        else:
            X = np.array([[row[f] for f in features] for row in payload["records"]], dtype=np.float64)
        values, alarms = score(X)
        return orjson.dumps(
            {"input_id": payload.get("id"), "score": values, "is_anomaly": alarms}, option=orjson.OPT_SERIALIZE_NUMPY
        )

    return transform


# -- the hub's scorer ---------------------------------------------------------------------------------------------
def wait_depth(stream, queue: str, expected: int, process: subprocess.Popen, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while stream.queue_depth(queue) < expected:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{queue} did not reach {expected} messages")
        time.sleep(0.02)
    return time.perf_counter()


def scorer(hub: ExperimentHub, config: Path, name: str, bodies: list[bytes], fmt: str, consumers: int = 1) -> float:
    """Fill ``<name>.input`` with ``bodies``, start ``experimenthub stream``; seconds to the last prediction."""
    stream = hub.get_plugin("datastream")
    for start in range(0, len(bodies), 500):
        chunk = bodies[start : start + 500]
        stream.publish(
            input_queue(name), [OutgoingMessage(b, uuid.uuid4().hex, content_type=content_type(fmt)) for b in chunk]
        )
    exe = str(Path(sys.executable).with_name("experimenthub"))
    command = [exe, "stream", name, "--config", str(config), "--batch-size", "100", "--consumers", str(consumers)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while stream.queue_depth(input_queue(name)) == len(bodies) and process.poll() is None:
                time.sleep(0.005)  # the scorer has loaded its model and started consuming
            started = time.perf_counter()
            finished = wait_depth(stream, prediction_queue(name), len(bodies), process)
        except RuntimeError:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            process.terminate()
            process.wait(timeout=60)
    stream.flush_queue(prediction_queue(name))
    return finished - started


def measure(path: str, hub: ExperimentHub, config: Path, name: str, model, bodies: list[bytes], fmt: str) -> float:
    if path == "raw":
        return move(bodies, fmt, None)
    if path == "minimal":
        return move(bodies, fmt, minimal_transform(model, fmt))
    return scorer(hub, config, name, bodies, fmt, consumers=2 if path == "scorer x2" else 1)


def main() -> None:
    from framework.datasets.process import make_process

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (one run, 5k records)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    runs, records = (1, 5_000) if args.quick else (args.runs, args.records)
    warnings.simplefilter("ignore")
    train, _ = make_process(n_normal=4000, n_test=10, seed=1)
    live, _ = make_process(n_normal=records, n_test=10, seed=2)
    live = live.drop(columns=["fault", "fault_type", "fault_sensor"], errors="ignore").head(records)
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        config = home / "hub.yaml"
        config.write_text(json.dumps(hub_config(home)))
        hub = ExperimentHub.from_hub_config(HubConfig.model_validate(hub_config(home)))
        name = f"bench-{uuid.uuid4().hex[:6]}"
        try:
            hub.create_experiment(name, "fault_detection", {"model": {"name": "pca"}, "timestamp": "timestamp"})
            hub.train(name, train)
            model = hub.load(name)
            for fmt in FORMATS:
                bodies = [encode_frame(live.iloc[i : i + PER_MESSAGE], fmt)[0] for i in range(0, records, PER_MESSAGE)]
                paths = ["raw", "minimal", "scorer"] + ([] if fmt == "split" else ["scorer x2"])
                for path in paths:
                    seconds = [measure(path, hub, config, name, model, bodies, fmt) for _ in range(runs)]
                    results[fmt, path] = records / statistics.median(seconds)
        finally:
            hub.get_plugin("datastream").delete_queue(input_queue(name))
            hub.get_plugin("datastream").delete_queue(prediction_queue(name))
            hub.shutdown()
    print(f"records/s, median of {runs} run(s), {records} records in messages of {PER_MESSAGE}")
    print(f"{'format':<8} {'raw':>9} {'minimal':>9} {'scorer':>9} {'x2':>9} {'scorer/minimal':>15} {'scorer/raw':>11}")
    for fmt in FORMATS:
        raw, minimal, ours = results[fmt, "raw"], results[fmt, "minimal"], results[fmt, "scorer"]
        two = results.get((fmt, "scorer x2"))
        print(
            f"{fmt:<8} {raw:>9,.0f} {minimal:>9,.0f} {ours:>9,.0f} {two or float('nan'):>9,.0f} "
            f"{ours / minimal:>15.2f} {ours / raw:>11.2f}"
        )
    summary = " ".join(
        f"{fmt}={results[fmt, 'scorer']:.0f} {fmt}_vs_minimal={results[fmt, 'scorer'] / results[fmt, 'minimal']:.2f}"
        for fmt in FORMATS
    )
    print(f"RESULT stream_throughput {summary}")


if __name__ == "__main__":
    main()
