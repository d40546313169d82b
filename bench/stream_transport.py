"""Stream transport: RabbitMQPlugin vs plain kombu moving the same messages, in the same run.

2000 messages of 100 JSON records each are published and then consumed (with acks) through:

* ``RabbitMQPlugin``: ``publish`` in batches of 100 (confirms awaited per batch), ``consume`` in micro-batches of 100
  with one batched ack each;
* raw kombu, same guarantees (the reference): durable queue, persistent messages, ``confirm_publish=True``
  (py-amqp waits for each confirm), a prefetching consumer that acks each message;
* raw kombu without confirms, for context only: the ceiling when the broker's word is not waited for.

The embedded ``LocalStreamPlugin`` is timed too, for context. Each figure is the median of ``--repeats`` runs.

    .venv/bin/python bench/stream_transport.py [--messages 2000] [--records 100] [--repeats 3]

The last line is ``RESULT stream_transport plugin_vs_raw=<plugin msgs/s / raw kombu msgs/s>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import kombu

from framework.plugins.datastream import DataStreamPlugin, Delivery, OutgoingMessage
from framework.plugins.local_stream import LocalStreamPlugin
from framework.plugins.rabbitmq_plugin import RabbitMQPlugin

BROKER = {"host": "127.0.0.1", "port": 5672, "username": "guest", "password": "guest"}
BATCH = 100


def make_bodies(messages: int, records: int) -> list[bytes]:
    return [
        json.dumps(
            [
                {"ts": f"2024-01-01T00:{m % 60:02d}:{r % 60:02d}", **{f"sensor_{k}": m * 0.1 + r + k for k in range(8)}}
                for r in range(records)
            ]
        ).encode()
        for m in range(messages)
    ]


def run_plugin(plugin: DataStreamPlugin, queue: str, bodies: list[bytes]) -> float:
    """Publish in batches and consume in micro-batches; seconds for both."""
    outgoing = [OutgoingMessage(body, message_id=str(i)) for i, body in enumerate(bodies)]
    stop = threading.Event()
    count = 0

    def handler(batch: list[Delivery]) -> None:
        nonlocal count
        count += len(batch)
        plugin.ack(batch)
        if count >= len(bodies):
            stop.set()

    started = time.perf_counter()
    for start in range(0, len(outgoing), BATCH):
        plugin.publish(queue, outgoing[start : start + BATCH])
    plugin.consume(queue, handler, batch_size=BATCH, batch_timeout_ms=50, stop=stop)
    elapsed = time.perf_counter() - started
    assert count == len(bodies), (count, len(bodies))
    return elapsed


def run_raw_kombu(queue: str, bodies: list[bytes], confirm: bool) -> float:
    """The same work with kombu's Producer and Consumer (one ack per message)."""
    options = {"confirm_publish": True} if confirm else {}
    with kombu.Connection(
        hostname=BROKER["host"],
        port=BROKER["port"],
        userid=BROKER["username"],
        password=BROKER["password"],
        transport="pyamqp",
        connect_timeout=5,
        transport_options=options,
    ) as conn:
        channel = conn.channel()
        producer = kombu.Producer(channel, routing_key=queue)
        count = 0

        def on_message(message: kombu.Message) -> None:
            nonlocal count
            count += 1
            message.ack()

        started = time.perf_counter()
        for i, body in enumerate(bodies):
            producer.publish(
                body,
                routing_key=queue,
                content_type="application/json",
                content_encoding="binary",
                delivery_mode=2,
                message_id=str(i),
                timeout=10,
            )
        consumer = kombu.Consumer(conn.channel(), queues=[kombu.Queue(queue, no_declare=True)], on_message=on_message)
        consumer.qos(prefetch_count=1000)
        with consumer:
            while count < len(bodies):
                conn.drain_events(timeout=10)
        elapsed = time.perf_counter() - started
    assert count == len(bodies), (count, len(bodies))
    return elapsed


def median_seconds(run: Callable[[], float], repeats: int) -> float:
    return statistics.median(run() for _ in range(repeats))


def report(label: str, seconds: float, messages: int, records: int) -> float:
    rate = messages / seconds
    print(f"{label:<42} {seconds:7.3f} s  {rate:9.0f} msgs/s  {rate * records:11.0f} records/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bodies = make_bodies(args.messages, args.records)
    print(f"{args.messages} messages x {args.records} records ({len(bodies[0]) / 1024:.1f} KiB each)")

    queue = f"bench.{uuid.uuid4().hex[:8]}.input"
    plugin = RabbitMQPlugin(**BROKER)
    plugin.initialize()
    plugin.create_queue(queue)
    try:
        run_plugin(plugin, queue, bodies[:BATCH])  # warm-up
        run_raw_kombu(queue, bodies[:BATCH], confirm=True)
        raw = median_seconds(lambda: run_raw_kombu(queue, bodies, confirm=True), args.repeats)
        ours = median_seconds(lambda: run_plugin(plugin, queue, bodies), args.repeats)
        ceiling = median_seconds(lambda: run_raw_kombu(queue, bodies, confirm=False), args.repeats)
    finally:
        plugin.delete_queue(queue)
        plugin.shutdown()
    with tempfile.TemporaryDirectory() as folder:
        local = LocalStreamPlugin(path=Path(folder) / "stream.sqlite")
        local.initialize()
        local.create_queue(queue)
        local_seconds = median_seconds(lambda: run_plugin(local, queue, bodies), args.repeats)
        local.shutdown()

    raw_rate = report("raw kombu (confirm_publish, ack each)", raw, args.messages, args.records)
    our_rate = report("RabbitMQPlugin (batched confirms and acks)", ours, args.messages, args.records)
    report("raw kombu, no confirms (context only)", ceiling, args.messages, args.records)
    report("LocalStreamPlugin (SQLite, context only)", local_seconds, args.messages, args.records)
    print(f"RabbitMQPlugin / raw kombu: {our_rate / raw_rate:.2f}x")
    print(f"RESULT stream_transport plugin_vs_raw={our_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
