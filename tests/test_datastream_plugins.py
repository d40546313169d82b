"""DataStream plugins against real RabbitMQ (127.0.0.1:5672) and the embedded SQLite stream.

Common behaviour is parametrised over both plugins; broker-specific cases (an independent pika client, outages
with ``rabbitmqctl stop_app``) follow. Every test uses its own queue names and deletes them afterwards.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from framework.errors import ConfigError, PluginError, PluginUnavailable
from framework.plugins.datastream import DEAD_LETTER_SUFFIX, DataStreamPlugin, Delivery, OutgoingMessage
from framework.plugins.local_stream import LocalStreamPlugin
from framework.plugins.rabbitmq_plugin import RabbitMQPlugin
from framework.plugins.testing import check_plugin
from tests.conftest import require_service

pytestmark = pytest.mark.timeout(120)

RABBIT = {"host": "127.0.0.1", "port": 5672, "username": "guest", "password": "guest"}


def _rabbit(**overrides: object) -> RabbitMQPlugin:
    require_service("rabbitmq")
    return RabbitMQPlugin(**{**RABBIT, "connect_timeout": 3.0, **overrides})


def _messages(n: int, prefix: str = "m") -> list[OutgoingMessage]:
    return [
        OutgoingMessage(body=f'[{{"i": {i}}}]'.encode(), message_id=f"{prefix}-{i}", headers={"n": i, "src": prefix})
        for i in range(n)
    ]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def _wait_for_broker(timeout: float = 30.0) -> None:
    probe = _rabbit(max_retries=0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            probe.initialize()
            probe.shutdown()
            return
        except PluginUnavailable:
            time.sleep(0.5)
    raise AssertionError("RabbitMQ did not come back")


@pytest.fixture
def queue_name() -> str:
    return f"test.{uuid.uuid4().hex[:10]}.input"


@pytest.fixture(params=["local", "rabbitmq"])
def make_stream(request, tmp_path, queue_name) -> Iterator[Callable[..., DataStreamPlugin]]:
    """A factory of initialized plugins of one kind sharing one store; queues are deleted at teardown."""
    made: list[DataStreamPlugin] = []

    def make(**overrides: object) -> DataStreamPlugin:
        if request.param == "local":
            plugin: DataStreamPlugin = LocalStreamPlugin(path=tmp_path / "state" / "stream.sqlite", **overrides)
        else:
            plugin = _rabbit(**overrides)
        plugin.initialize()
        made.append(plugin)
        return plugin

    yield make
    if request.param == "rabbitmq":
        cleaner = _rabbit()
        cleaner.initialize()
        cleaner.delete_queue(queue_name)
        cleaner.shutdown()
    for plugin in made:
        plugin.shutdown()


@pytest.fixture
def stream(make_stream, queue_name) -> DataStreamPlugin:
    plugin = make_stream()
    plugin.create_queue(queue_name)
    return plugin


# ---------------------------------------------------------------------------------------------- both plugins


@pytest.mark.parametrize("kind", ["local", "rabbitmq"])
def test_conformance(kind, tmp_path):
    plugin = LocalStreamPlugin(path=tmp_path / "s.sqlite") if kind == "local" else _rabbit()
    report = check_plugin(plugin)
    assert "shutdown_idempotent" in report.passed
    assert isinstance(plugin, DataStreamPlugin)


def test_publish_pull_ack_round_trip(stream, queue_name):
    stream.publish(queue_name, _messages(5))
    assert stream.queue_depth(queue_name) == 5
    got = stream.pull_data(queue_name, max_messages=10, timeout=2.0)
    assert [d.message_id for d in got] == [f"m-{i}" for i in range(5)]
    assert got[2].body == b'[{"i": 2}]'
    assert got[2].headers == {"n": 2, "src": "m"}
    assert got[2].content_type == "application/json"
    assert not got[0].redelivered
    assert got[0].timestamp is not None
    stream.ack(got)
    assert stream.pull_data(queue_name, timeout=0.2) == []
    assert stream.queue_depth(queue_name) == 0


def test_settling_nothing_is_a_no_op(stream, queue_name):
    stream.publish(queue_name, _messages(2))
    held = stream.pull_data(queue_name, max_messages=2, timeout=5)
    stream.ack([])
    stream.reject([], requeue=False)  # must not touch the two held deliveries
    stream.reject(held, requeue=True)
    again = stream.pull_data(queue_name, max_messages=2, timeout=5)
    assert sorted(d.message_id for d in again) == ["m-0", "m-1"]
    stream.ack(again)
    assert stream.pull_data(queue_name, timeout=0.2) == []


def test_pull_respects_max_messages(stream, queue_name):
    stream.publish(queue_name, _messages(7))
    first = stream.pull_data(queue_name, max_messages=3)
    rest = stream.pull_data(queue_name, max_messages=10)
    assert len(first) == 3
    assert len(rest) == 4
    stream.ack(rest)
    stream.ack(first)
    assert stream.queue_depth(queue_name) == 0


def test_reject_without_requeue_goes_to_dead_letter(stream, queue_name):
    stream.publish(queue_name, _messages(2, prefix="bad"))
    got = stream.pull_data(queue_name, max_messages=2)
    stream.reject(got, requeue=False)
    dead = stream.pull_data(queue_name + DEAD_LETTER_SUFFIX, max_messages=10, timeout=3.0)
    assert sorted(d.message_id for d in dead) == ["bad-0", "bad-1"]
    assert dead[0].headers["src"] == "bad"
    assert dead[0].headers["x-first-death-reason"] == "rejected"
    assert dead[0].body == got[0].body
    stream.ack(dead)
    assert stream.queue_depth(queue_name) == 0


def test_explicit_publish_to_dead_letter_keeps_reason(stream, queue_name):
    dead_queue = queue_name + DEAD_LETTER_SUFFIX
    stream.publish(dead_queue, [OutgoingMessage(b"not json", headers={"reason": "bad record: field t"})])
    (dead,) = stream.pull_data(dead_queue, max_messages=5)
    assert dead.headers["reason"] == "bad record: field t"
    stream.ack([dead])


def test_reject_with_requeue_redelivers(stream, queue_name):
    stream.publish(queue_name, _messages(3))
    got = stream.pull_data(queue_name, max_messages=3)
    stream.reject(got[1:], requeue=True)
    again = stream.pull_data(queue_name, max_messages=3)
    assert sorted(d.message_id for d in again) == ["m-1", "m-2"]
    assert all(d.redelivered for d in again)
    stream.ack([*got[:1], *again])


def test_partial_ack_leaves_the_gap_unacked(make_stream, stream, queue_name):
    """Batched (multiple) acks must not ack a delivery the caller left unsettled."""
    stream.publish(queue_name, _messages(10))
    got = stream.pull_data(queue_name, max_messages=10)
    stream.ack(got[6:])
    stream.ack(got[:5])
    stream.shutdown()
    reader = make_stream()
    (back,) = reader.pull_data(queue_name, max_messages=10, timeout=3.0)
    assert back.message_id == "m-5"
    assert back.redelivered
    reader.ack([back])


def test_unacked_come_back_after_the_consumer_goes_away(make_stream, stream, queue_name):
    stream.publish(queue_name, _messages(4))
    assert len(stream.pull_data(queue_name, max_messages=4)) == 4
    stream.shutdown()  # rabbitmq: the connection closes; local: the instance stops (a restart follows)
    restarted = make_stream()
    back = restarted.pull_data(queue_name, max_messages=10, timeout=3.0)
    assert sorted(d.message_id for d in back) == [f"m-{i}" for i in range(4)]
    assert all(d.redelivered for d in back)
    restarted.ack(back)


def test_consume_delivers_micro_batches_and_stops(stream, queue_name):
    stream.publish(queue_name, _messages(250))
    stop = threading.Event()
    sizes: list[int] = []
    seen: list[str] = []
    errors: list[BaseException] = []

    def handler(batch: list[Delivery]) -> None:
        sizes.append(len(batch))
        seen.extend(d.message_id for d in batch)
        stream.ack(batch)
        if len(seen) >= 250:
            stop.set()

    def run() -> None:
        # the plugin is used from this thread only (one connection per thread)
        try:
            stream.consume(queue_name, handler, batch_size=100, batch_timeout_ms=100, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    stop.set()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert not errors
    assert sorted(seen) == sorted(f"m-{i}" for i in range(250))
    assert max(sizes) == 100
    assert sum(sizes) == 250
    assert stream.queue_depth(queue_name) == 0


def test_consume_returns_when_stop_is_set_on_an_idle_queue(stream, queue_name):
    stop = threading.Event()
    worker = threading.Thread(target=stream.consume, args=(queue_name, lambda batch: None), kwargs={"stop": stop})
    worker.start()
    time.sleep(0.3)
    stop.set()
    worker.join(timeout=10)
    assert not worker.is_alive()


def test_consume_handler_error_requeues_the_batch(stream, queue_name):
    stream.publish(queue_name, _messages(3))

    def handler(batch: list[Delivery]) -> None:
        raise ValueError("scorer bug")

    with pytest.raises(ValueError, match="scorer bug"):
        stream.consume(queue_name, handler, batch_size=3, batch_timeout_ms=500)
    back = stream.pull_data(queue_name, max_messages=5, timeout=3.0)
    assert len(back) == 3
    stream.ack(back)


def test_flush_queue_and_depths(stream, queue_name):
    stream.publish(queue_name, _messages(6))
    assert stream.queue_depth(queue_name) == 6
    depths = stream.queue_depths()
    assert depths[queue_name] == 6
    assert depths[queue_name + DEAD_LETTER_SUFFIX] == 0
    assert stream.flush_queue(queue_name) == 6
    assert stream.queue_depth(queue_name) == 0
    assert stream.flush_queue(queue_name) == 0


def test_create_queue_is_idempotent(stream, queue_name):
    stream.create_queue(queue_name)
    stream.publish(queue_name, _messages(1))
    assert stream.queue_depth(queue_name) == 1


def test_publish_to_unknown_queue_is_refused(stream):
    with pytest.raises(PluginError, match=r"no such queue|no queue named"):
        stream.publish("test.never-declared", _messages(1))


def test_topic_reaches_its_queue_and_every_watcher(stream, queue_name):
    stream.create_topic(queue_name)
    watchers = [stream.watch(queue_name), stream.watch(queue_name)]
    stream.publish_topic(queue_name, [OutgoingMessage(b"1", message_id="a"), OutgoingMessage(b"2", message_id="b")])
    for watch in watchers:
        seen: list = []
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            seen += watch.poll(max_messages=10, timeout=0.5)
        watch.close()
        assert [(d.body, d.message_id) for d in seen] == [(b"1", "a"), (b"2", "b")]
    taken = stream.pull_data(queue_name, max_messages=10, timeout=2.0)
    stream.ack(taken)
    assert [d.message_id for d in taken] == ["a", "b"]  # watching took nothing from the queue


def test_local_topic_log_is_bounded(tmp_path):
    from framework.plugins import local_stream

    plugin = LocalStreamPlugin(path=tmp_path / "stream.sqlite")
    plugin.initialize()
    plugin.create_topic("t.predictions")
    watch = plugin.watch("t.predictions")
    messages = [OutgoingMessage(str(i).encode()) for i in range(local_stream.RECENT_LIMIT + 5)]
    plugin.publish_topic("t.predictions", messages)
    seen = watch.poll(max_messages=10 * local_stream.RECENT_LIMIT, timeout=1.0)
    assert len(seen) == local_stream.RECENT_LIMIT and seen[-1].body == str(local_stream.RECENT_LIMIT + 4).encode()
    assert plugin.queue_depth("t.predictions") == local_stream.RECENT_LIMIT + 5  # the queue keeps everything
    plugin.shutdown()


def test_health_reports_queue_depths(stream, queue_name):
    stream.publish(queue_name, _messages(2))
    healthy, details = stream.health_check()
    assert healthy, details
    assert details["queues"][queue_name] == 2


# ---------------------------------------------------------------------------------------------- local only


def test_local_creates_parent_folders(tmp_path):
    plugin = LocalStreamPlugin(path=tmp_path / "a" / "b" / "stream.sqlite")
    plugin.initialize()
    assert (tmp_path / "a" / "b" / "stream.sqlite").exists()
    plugin.shutdown()


def test_local_unacked_come_back_after_a_crash(tmp_path):
    path = tmp_path / "stream.sqlite"
    plugin = LocalStreamPlugin(path=path)
    plugin.initialize()
    plugin.create_queue("crash.input")
    plugin.publish("crash.input", _messages(3))
    plugin.shutdown()
    crash = textwrap.dedent(
        f"""
        import os
        from framework.plugins.local_stream import LocalStreamPlugin
        plugin = LocalStreamPlugin(path={str(path)!r})
        plugin.initialize()
        assert len(plugin.pull_data("crash.input", max_messages=3)) == 3
        os._exit(0)  # no shutdown, no ack: a crash
        """
    )
    subprocess.run([sys.executable, "-c", crash], check=True, timeout=60)
    restarted = LocalStreamPlugin(path=path)
    restarted.initialize()
    back = restarted.pull_data("crash.input", max_messages=10)
    assert sorted(d.message_id for d in back) == ["m-0", "m-1", "m-2"]
    assert all(d.redelivered for d in back)
    restarted.ack(back)
    restarted.shutdown()


def test_local_messages_survive_a_restart(tmp_path):
    first = LocalStreamPlugin(path=tmp_path / "stream.sqlite")
    first.initialize()
    first.create_queue("keep.input")
    first.publish("keep.input", _messages(2))
    first.shutdown()
    second = LocalStreamPlugin(path=tmp_path / "stream.sqlite")
    second.initialize()
    assert second.queue_depths() == {"keep.input": 2, "keep.input.dead-letter": 0}
    second.shutdown()


def test_local_bad_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match="LocalStreamPlugin: polling_interval: Input should be greater than 0"):
        LocalStreamPlugin(path=tmp_path / "s.sqlite", polling_interval=0)


# ---------------------------------------------------------------------------------------------- rabbitmq only


@pytest.fixture
def rabbit_stream(queue_name) -> Iterator[RabbitMQPlugin]:
    plugin = _rabbit()
    plugin.initialize()
    plugin.create_queue(queue_name)
    yield plugin
    plugin.delete_queue(queue_name)
    plugin.shutdown()


def _pika_connection():
    import pika

    params = pika.ConnectionParameters(
        host="127.0.0.1",
        port=5672,
        credentials=pika.PlainCredentials("guest", "guest"),
        socket_timeout=5,
        blocked_connection_timeout=5,
    )
    return pika.BlockingConnection(params)


def test_rabbitmq_interoperates_with_an_independent_pika_client(rabbit_stream, queue_name):
    import pika

    connection = _pika_connection()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2, message_id="from-pika", headers={"k": "v"})
        channel.basic_publish("", queue_name, b'{"x": 1}', properties=props)
        (got,) = rabbit_stream.pull_data(queue_name, max_messages=5, timeout=3.0)
        assert (got.body, got.message_id, got.headers) == (b'{"x": 1}', "from-pika", {"k": "v"})
        rabbit_stream.ack([got])
        rabbit_stream.publish(queue_name, _messages(1, prefix="plugin"))
        method, properties, body = channel.basic_get(queue_name, auto_ack=False)
        assert method is not None
        assert (body, properties.message_id, properties.headers) == (
            b'[{"i": 0}]',
            "plugin-0",
            {"n": 0, "src": "plugin"},
        )
        assert properties.delivery_mode == 2
        channel.basic_ack(method.delivery_tag)
        declared = channel.queue_declare(queue_name, passive=True)
        assert declared.method.message_count == 0
    finally:
        connection.close()


def test_rabbitmq_quorum_queue(queue_name):
    plugin = _rabbit(queue_type="quorum")
    plugin.initialize()
    try:
        plugin.create_queue(queue_name)
        plugin.publish(queue_name, _messages(2))
        got = plugin.pull_data(queue_name, max_messages=2, timeout=2.0)
        plugin.reject(got[:1], requeue=False)
        plugin.ack(got[1:])
        (dead,) = plugin.pull_data(queue_name + DEAD_LETTER_SUFFIX, max_messages=5, timeout=3.0)
        assert dead.message_id == "m-0"
        plugin.ack([dead])
    finally:
        plugin.delete_queue(queue_name)
        plugin.shutdown()


def test_rabbitmq_redeclare_with_other_settings_is_a_clear_error(queue_name):
    plugin = _rabbit()
    plugin.initialize()
    try:
        plugin.create_queue(queue_name, dead_letter=False)
        with pytest.raises(PluginError, match="PRECONDITION_FAILED"):
            plugin.create_queue(queue_name)  # now with dead-letter arguments
        plugin.publish(queue_name, _messages(1))  # the channel recovered
        assert plugin.queue_depth(queue_name) == 1
    finally:
        plugin.delete_queue(queue_name)
        plugin.shutdown()


def test_rabbitmq_wrong_password_is_a_plugin_error_without_the_password():
    secret = "Wr0ng-S3cret-pw"
    plugin = _rabbit(password=secret)
    with pytest.raises(PluginError) as info:
        plugin.initialize()
    assert secret not in str(info.value)
    assert "login" in str(info.value)
    healthy, details = plugin.health_check()
    assert not healthy
    assert secret not in repr(details)


def test_rabbitmq_unreachable_broker_fails_initialize():
    plugin = _rabbit(port=1, connect_timeout=1.0)
    with pytest.raises(PluginUnavailable, match="unreachable"):
        plugin.initialize()


@pytest.mark.parametrize("connect_timeout", [2.0, 5.0])
def test_rabbitmq_initialize_backs_off_only_within_connect_timeout(connect_timeout, caplog):
    """A refused port: the back-off sleeps initialize makes add up to at most ``connect_timeout`` (the documented 5 s
    took 8 s: kombu checks its timeout only before it sleeps, so the last back-off overshot)."""
    import re

    plugin = _rabbit(port=1, connect_timeout=connect_timeout)
    with caplog.at_level(logging.WARNING), pytest.raises(PluginUnavailable):
        plugin.initialize()
    slept = [float(m) for m in re.findall(r"retrying in ([0-9.]+)s", caplog.text)]
    assert slept and sum(slept) <= connect_timeout, slept


def test_rabbitmq_settles_only_on_the_receiving_thread(rabbit_stream, queue_name):
    rabbit_stream.publish(queue_name, _messages(1))
    got = rabbit_stream.pull_data(queue_name)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            rabbit_stream.ack(got)
        except PluginError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=10)
    assert errors
    assert "thread" in str(errors[0])
    rabbit_stream.ack(got)


needs_rabbitmqctl = pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="rabbitmqctl not installed")


@pytest.mark.slow
@needs_rabbitmqctl
def test_rabbitmq_health_while_the_broker_is_down(queue_name):
    secret_user = {"password": "guest"}
    plugin = _rabbit(**secret_user)
    plugin.initialize()
    plugin.create_queue(queue_name)
    try:
        _rabbitmqctl("stop_app")
        healthy, details = plugin.health_check()
        assert not healthy
        assert details["status"] in ("unreachable", "login refused")
        assert "guest@" not in repr(details)
        assert ":guest" not in repr(details)
    finally:
        _rabbitmqctl("start_app")
    _wait_for_broker()
    healthy, details = plugin.health_check()
    assert healthy, details
    assert details["server_version"]
    assert details["queues"][queue_name] == 0
    plugin.delete_queue(queue_name)
    plugin.shutdown()


@pytest.mark.slow
@needs_rabbitmqctl
def test_rabbitmq_survives_a_broker_restart(queue_name, caplog):
    caplog.set_level(logging.WARNING)
    policy = {"max_retries": 30, "retry_interval_start": 0.2, "retry_interval_step": 0.3, "retry_interval_max": 1.0}
    plugin = _rabbit(**policy)
    plugin.initialize()
    plugin.create_queue(queue_name)
    published: set[str] = set()
    received: set[str] = set()
    stop_publishing, stop_consuming = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def publisher() -> None:
        batch_no = 0
        while not stop_publishing.is_set():
            batch = _messages(5, prefix=f"b{batch_no}")
            try:
                plugin.publish(queue_name, batch)
            except PluginUnavailable:
                continue  # not confirmed: publish the same batch again
            published.update(m.message_id for m in batch)
            batch_no += 1
            time.sleep(0.02)

    def handler(batch: list[Delivery]) -> None:
        received.update(d.message_id for d in batch)
        plugin.ack(batch)

    def consumer() -> None:
        try:
            plugin.consume(queue_name, handler, batch_size=50, batch_timeout_ms=50, stop=stop_consuming)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher), threading.Thread(target=consumer)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        _rabbitmqctl("stop_app")
        time.sleep(1.0)
    finally:
        _rabbitmqctl("start_app")
    _wait_for_broker()
    time.sleep(1.0)
    stop_publishing.set()
    threads[0].join(timeout=60)
    deadline = time.monotonic() + 60
    while not published <= received and time.monotonic() < deadline:
        time.sleep(0.2)
    stop_consuming.set()
    threads[1].join(timeout=30)
    assert not errors
    assert not any(t.is_alive() for t in threads)
    assert published, "nothing was published"
    assert published <= received, f"{len(published - received)} confirmed messages never arrived"
    assert any("connection lost" in r.getMessage() or "unreachable" in r.getMessage() for r in caplog.records)
    plugin.delete_queue(queue_name)
    plugin.shutdown()


def test_rabbitmq_a_long_handler_keeps_its_connections_alive(queue_name):
    """A batch that computes for several heartbeat intervals (no I/O) is not dropped by the broker: its ack and
    its publish go through on the same connections, and nothing is redelivered."""
    plugin = _rabbit(heartbeat=1)  # the broker gives up on a silent client after about 2 s
    plugin.initialize()
    seen: list[tuple[str | None, bool]] = []
    stop = threading.Event()

    def handler(batch):
        seen.extend((d.message_id, d.redelivered) for d in batch)
        time.sleep(6)  # CPU-bound scoring reads no frames and sends none
        plugin.publish(queue_name + ".out", _messages(1, prefix="result"))
        plugin.ack(batch)
        stop.set()

    try:
        plugin.create_queue(queue_name)
        plugin.create_queue(queue_name + ".out", dead_letter=False)
        plugin.publish(queue_name + ".out", _messages(1, prefix="warm-up"))  # opens the publisher connection
        plugin.publish(queue_name, _messages(1))
        plugin.consume(queue_name, handler, batch_size=1, batch_timeout_ms=50, stop=stop)
        assert seen == [("m-0", False)]  # handled once, never redelivered
        assert plugin.queue_depth(queue_name) == 0
        assert plugin.queue_depth(queue_name + ".out") == 2
    finally:
        plugin.delete_queue(queue_name)
        plugin.delete_queue(queue_name + ".out", dead_letter=False)
        plugin.shutdown()
