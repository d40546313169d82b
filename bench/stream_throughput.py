"""End-to-end stream scoring through RabbitMQ, next to the broker's raw ceiling, in the same run.

- **ours**: 200k records in 2000 messages of 100 records wait in ``<name>.input``; the scorer
  (``experimenthub stream``, a separate process) decodes, predicts with a trained PCA fault detector,
  publishes to ``<name>.predictions`` with confirms, then acks. Timed from start to the last prediction.
- **raw ceiling**: the same 2000 messages moved input -> output by plain kombu with confirms and acks, no model.
- **one record per message**: the scorer on 5000 single-record messages (what batching saves).

Also the scorer's peak memory (VmHWM). Targets (issue 6): ≥ 50k records/s, ratio to the raw ceiling ≥ 0.5.
Run: ``.venv/bin/python bench/stream_throughput.py`` (RabbitMQ on 127.0.0.1:5672).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import kombu

from framework.config import HubConfig
from framework.ExperimentHub import ExperimentHub
from framework.streaming import input_queue, prediction_queue

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
RECORDS = 200_000
PER_MESSAGE = 100
SINGLE_MESSAGES = 5_000


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


def wait_depth(stream, queue: str, expected: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while stream.queue_depth(queue) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{queue} did not reach {expected} messages")
        time.sleep(0.05)
    return time.perf_counter()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scorer_run(hub: ExperimentHub, config: Path, name: str, n_messages: int) -> tuple[float, float]:
    """Start the scorer on a pre-filled input queue; return (seconds to the last prediction, peak RSS MB)."""
    stream = hub.get_plugin("datastream")
    exe = str(Path(sys.executable).with_name("experimenthub"))
    process = subprocess.Popen(
        [exe, "stream", name, "--config", str(config), "--batch-size", "50"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while stream.queue_depth(input_queue(name)) == n_messages and process.poll() is None:
            time.sleep(0.01)  # the scorer has loaded its model and started consuming
        started = time.perf_counter()
        finished = wait_depth(stream, prediction_queue(name), n_messages)
        memory = peak_rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return finished - started, memory


def raw_ceiling(bodies: list[bytes]) -> float:
    """Plain kombu: fill a source queue, then move every message to a sink (confirmed publish, then ack).

    Publishing uses its own connection: a confirmed publish drains events, which must not happen inside the
    consumer's callback.
    """
    source, sink = f"bench-raw-{uuid.uuid4().hex[:6]}", f"bench-raw-sink-{uuid.uuid4().hex[:6]}"
    options = {"confirm_publish": True}
    with kombu.Connection(BROKER, transport_options=options) as out, kombu.Connection(BROKER) as inp:
        queues = [kombu.Queue(q, routing_key=q, durable=True) for q in (source, sink)]
        producer = out.Producer(serializer=None)
        for queue in queues:
            queue(out.default_channel).declare()

        def send(body: bytes, routing_key: str) -> None:  # "binary": the body travels undecoded
            producer.publish(
                body,
                routing_key=routing_key,
                content_type="application/octet-stream",
                content_encoding="binary",
                delivery_mode=2,
            )

        for body in bodies:
            send(body, source)
        moved = 0
        started = time.perf_counter()

        def move(message: kombu.Message) -> None:
            nonlocal moved
            send(message.body, sink)
            message.ack()
            moved += 1

        with inp.Consumer(queues[0], on_message=move, prefetch_count=1000, auto_declare=False):
            while moved < len(bodies):
                inp.drain_events(timeout=10)
        elapsed = time.perf_counter() - started
        for queue in queues:
            queue(out.default_channel).delete()
    return elapsed


def main() -> None:
    from framework.datasets.process import make_process
    from framework.records import encode_records

    warnings.simplefilter("ignore")
    train, _ = make_process(n_normal=4000, n_test=10, seed=1)
    live, _ = make_process(n_normal=RECORDS, n_test=10, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        config = home / "hub.yaml"
        config.write_text(json.dumps(hub_config(home)))
        hub = ExperimentHub.from_hub_config(HubConfig.model_validate(hub_config(home)))
        stream = hub.get_plugin("datastream")
        names = [f"bench-{uuid.uuid4().hex[:6]}", f"bench-one-{uuid.uuid4().hex[:6]}"]
        try:
            for name in names:
                hub.create_experiment(name, "fault_detection", {"model": {"name": "pca"}, "timestamp": "timestamp"})
                hub.train(name, train)
            ids = hub.publish_records(names[0], live, batch_size=PER_MESSAGE)
            ours_s, memory = scorer_run(hub, config, names[0], len(ids))
            single = hub.publish_records(names[1], live.head(SINGLE_MESSAGES), batch_size=1)
            single_s, _ = scorer_run(hub, config, names[1], len(single))
            bodies = [encode_records(live.iloc[i : i + PER_MESSAGE]) for i in range(0, RECORDS, PER_MESSAGE)]
            raw_s = raw_ceiling(bodies)
        finally:
            for name in names:
                for queue in (input_queue(name), prediction_queue(name)):
                    stream.delete_queue(queue)
            hub.shutdown()
    ours, raw, one = RECORDS / ours_s, RECORDS / raw_s, SINGLE_MESSAGES / single_s
    print(f"{'path':<52} {'records/s':>12}")
    print(f"{'raw kombu move, no model (broker ceiling)':<52} {raw:>12,.0f}")
    print(f"{'scorer, 100-record messages (ours)':<52} {ours:>12,.0f}")
    print(f"{'scorer, 1-record messages':<52} {one:>12,.0f}")
    print(f"scorer peak memory: {memory:.0f} MB")
    print(
        f"RESULT stream_throughput records_per_s={ours:.0f} vs_raw_ceiling={ours / raw:.2f} "
        f"batched_vs_single={ours / one:.1f} peak_rss_mb={memory:.0f}"
    )


if __name__ == "__main__":
    main()
