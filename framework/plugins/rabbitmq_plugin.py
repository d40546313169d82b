"""RabbitMQ ``DataStreamPlugin`` on kombu (py-amqp transport).

Durable queues, persistent messages, publisher confirms waited for per batch, manual acks sent as one
``multiple=True`` frame where the acked set allows it, and a dead-letter queue wired to every queue.

>>> stream = RabbitMQPlugin(host="localhost", port=5672, username="guest", password="guest")
>>> stream.initialize()
>>> stream.create_queue("pump.input")                  # also declares "pump.input.dead-letter"
>>> stream.publish("pump.input", [OutgoingMessage(b'[{"t": 1}]')])   # returns once the broker confirmed
>>> batch = stream.pull_data("pump.input", max_messages=100, timeout=1.0)
>>> stream.ack(batch)

Threading: AMQP connections are not thread-safe, so each thread that calls the plugin gets its own connection
and channel (opened on first use, closed by ``disconnect()`` in that thread or by ``shutdown()``), plus a second
connection for ``publish``: waiting for confirms there never dispatches the consumer's deliveries. A delivery
must be settled (``ack``/``reject``) from the thread that received it. ``health_check`` uses a short-lived
connection of its own, so any thread may call it.

Heartbeats are sent only while the plugin is called (py-amqp has no I/O thread). ``consume`` ticks them, and
while its handler computes (a long CPU-bound batch), a keep-alive thread sends them on the consumer's and the
publisher's connections, writing under each session's lock, so the broker never drops a busy scorer. Any other
thread idle for longer than two heartbeat intervals finds its connection closed; the next call reconnects and
retries, and deliveries it had not settled are redelivered by the broker.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import amqp
import kombu
import kombu.exceptions

from framework.errors import PluginError, PluginUnavailable, redact
from framework.plugins.datastream import (
    DEAD_LETTER_SUFFIX,
    BatchHandler,
    DataStreamPlugin,
    Delivery,
    OutgoingMessage,
)
from framework.plugins.per_thread import PerThread
from framework.plugins.settings import RabbitMQConfig, TLSConfig, validated_by
from framework.plugins.tls import tls_failure

__all__ = ["RabbitMQPlugin"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    *amqp.Connection.connection_errors,
    *amqp.Connection.recoverable_connection_errors,
    kombu.exceptions.OperationalError,
    TimeoutError,
)
_OP_ATTEMPTS = 3  # an operation is retried on a fresh connection at most twice
_TICK = 0.25  # seconds between stop/heartbeat checks while consuming an idle queue
_PULL_POLL = 0.05  # seconds between basic.get polls while pull_data waits for a first message
_HEALTH_TIMEOUT = 3.0


class _KeepAlive:
    """Heartbeats on some sessions while their owner is busy in a handler (one thread per ``consume``)."""

    def __init__(self, sessions: Sequence[_Session], heartbeat: float) -> None:
        self.sessions = sessions
        self.interval = max(heartbeat / 4, 0.2)
        self._busy = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="rabbitmq-keepalive", daemon=True)
        if heartbeat > 0:
            self._thread.start()

    def _beat(self) -> None:
        while not self._stopped.wait(self.interval):
            if self._busy.is_set():
                for session in self.sessions:
                    session.send_heartbeat()

    @contextmanager
    def busy(self) -> Iterator[None]:
        self._busy.set()
        try:
            yield
        finally:
            self._busy.clear()
            for session in self.sessions:
                session.frames_waited()

    def stop(self) -> None:
        self._stopped.set()


@dataclass(frozen=True)
class _Tag:
    """Where a delivery came from: the thread's session, the channel epoch and the AMQP delivery tag."""

    session: _Session
    epoch: int
    number: int


class _Session:
    """One thread's kombu connection and channel. Only that thread uses it, except for the keep-alive's heartbeat
    frames, which are written under ``io_lock`` (held by the owner around its own I/O)."""

    def __init__(self) -> None:
        self.io_lock = threading.RLock()
        self.connection: kombu.Connection | None = None
        self.channel: Any = None
        self.epoch = 0  # bumped whenever the channel is replaced; tags of older epochs are stale
        self.outstanding: set[int] = set()  # delivery tags received and not yet settled
        self.unconfirmed: set[int] = set()  # publish sequence numbers the broker has not confirmed yet
        self.publish_seq = 0
        self.nacked = 0
        self.returned: list[str] = []

    def on_confirm(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.unconfirmed = {seq for seq in self.unconfirmed if seq > tag}
        else:
            self.unconfirmed.discard(tag)

    def on_nack(self, tag: int, multiple: bool) -> None:
        before = len(self.unconfirmed)
        self.on_confirm(tag, multiple)
        self.nacked += before - len(self.unconfirmed)

    def on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self.returned.append(routing_key)

    def drain(self, timeout: float) -> None:
        """Process incoming frames for up to ``timeout`` seconds; raises ``TimeoutError`` when none came."""
        assert self.connection is not None
        self.connection.connection.drain_events(timeout=timeout)

    def discard(self) -> None:
        """Forget the connection without talking to the broker (it is gone or in an unknown state)."""
        if self.connection is not None:
            try:
                self.connection.collect()
            except Exception as exc:  # best effort: the socket is already dead
                log.debug("collecting a dead RabbitMQ connection failed: %s", exc)
        self.connection, self.channel = None, None
        self.outstanding.clear()
        self.unconfirmed.clear()

    def send_heartbeat(self) -> None:
        """Send one heartbeat frame unless the owner is doing I/O (which is itself traffic); never raises."""
        if not self.io_lock.acquire(blocking=False):
            return
        try:
            amqp_connection = self.connection.connection if self.connection is not None else None
            if amqp_connection is not None and amqp_connection.connected:
                amqp_connection.send_heartbeat()
        except Exception as exc:  # the owner finds the broken connection on its next call
            log.debug("keep-alive heartbeat failed: %s", exc)
        finally:
            self.io_lock.release()

    def frames_waited(self) -> None:
        """After a busy handler: the broker's frames wait unread in the socket, which is not the broker's silence,
        so py-amqp must not count the time as missed heartbeats."""
        if self.connection is not None and self.connection.connected:
            self.connection.connection.prev_recv = None

    def close(self) -> None:
        """Close the connection politely (bounded by the read/write timeouts); never raises."""
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception as exc:
                log.debug("closing a RabbitMQ connection failed: %s", redact(str(exc)))
        self.discard()


class RabbitMQPlugin(DataStreamPlugin):
    """``DataStreamPlugin`` for RabbitMQ: durable queues, confirmed publishes, batched manual acks.

    Parameters
    ----------
    host, port, username, password, virtual_host:
        Where the broker is and how to log in. The password never appears in logs, errors or health details.
    heartbeat:
        AMQP heartbeat in seconds (0 disables it).
    prefetch:
        ``basic.qos`` prefetch count per channel, large enough for micro-batches to fill.
    queue_type:
        ``"classic"`` or ``"quorum"`` for queues this plugin declares.
    connect_timeout:
        ``initialize`` gives up after this many seconds with ``PluginUnavailable``.
    operation_timeout:
        Socket read/write timeout, and how long ``publish`` waits for the broker's confirms.
    max_retries, retry_interval_start, retry_interval_step, retry_interval_max:
        Reconnection policy after the connection is lost (kombu ``ensure_connection``).
    ssl:
        TLS (amqps), a ``TLSConfig`` or its dict: ``{ca_file, cert_file, key_file, verify: true}``; the port then
        defaults to 5671. A certificate the client cannot verify is a ``PluginError`` at once (never retried).
    """

    plugin_type = "datastream"
    config_model = RabbitMQConfig

    @validated_by(RabbitMQConfig)
    def __init__(
        self,
        host: str = "localhost",
        port: int = 5672,
        username: str = "guest",
        password: str = "guest",
        virtual_host: str = "/",
        heartbeat: int = 30,
        prefetch: int = 1000,
        queue_type: str = "classic",
        connect_timeout: float = 5.0,
        operation_timeout: float = 10.0,
        max_retries: int = 5,
        retry_interval_start: float = 0.5,
        retry_interval_step: float = 1.0,
        retry_interval_max: float = 5.0,
        ssl: TLSConfig | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.virtual_host = virtual_host
        self.heartbeat = heartbeat
        self.prefetch = prefetch
        self.queue_type = queue_type
        self.connect_timeout = connect_timeout
        self.operation_timeout = operation_timeout
        self.max_retries = max_retries
        self.retry_interval_start = retry_interval_start
        self.retry_interval_step = retry_interval_step
        self.retry_interval_max = retry_interval_max
        self.ssl = ssl
        self._lock = threading.Lock()  # guards _declared
        self._sessions: PerThread[_Session] = PerThread(_Session.close)
        self._publishers: PerThread[_Session] = PerThread(_Session.close)  # publish on a connection of its own
        self._declared: set[str] = set()
        self._initialized = False

    # ------------------------------------------------------------------ lifecycle

    def initialize(self) -> None:
        """Connect this thread; ``PluginUnavailable`` within ``connect_timeout`` if down."""
        self._initialized = True
        session = self._session()
        try:
            self._open(session, max_retries=self.max_retries, timeout=self.connect_timeout)
        except PluginError:
            self._initialized = False
            raise

    def shutdown(self) -> None:
        """Close every thread's connection. Idempotent. Stop consumers first."""
        self._initialized = False
        self._sessions.close_all()
        self._publishers.close_all()

    def connect(self) -> None:
        """Open the calling thread's connection now (it is otherwise opened on first use)."""
        self._ensure_open(self._session())

    def disconnect(self) -> None:
        """Close the calling thread's connection; its unsettled deliveries go back to their queues."""
        self._sessions.discard_current()
        self._publishers.discard_current()

    def health_check(self) -> tuple[bool, dict]:
        """Probe the broker on a short-lived connection: login, a passive declare, and queue depths. Never raises."""
        details: dict[str, Any] = {"broker": self._where(), "username": self.username, "queue_type": self.queue_type}
        if not self._initialized:
            return False, {**details, "status": "not initialized"}
        details["thread_connections"] = sum(
            1 for s in self._sessions.snapshot() if s.connection is not None and s.connection.connected
        )
        with self._lock:
            declared = sorted(self._declared)
        conn = self._connection(timeout=min(self.connect_timeout, _HEALTH_TIMEOUT))
        try:
            conn.ensure_connection(max_retries=0, timeout=_HEALTH_TIMEOUT)
            details["server_version"] = _text(conn.connection.server_properties.get("version"))
            channel = conn.channel()
            channel.exchange_declare("amq.direct", "direct", passive=True)
            depths: dict[str, int] = {}
            missing: list[str] = []
            for name in declared:
                try:
                    depths[name] = channel.queue_declare(name, passive=True).message_count
                except amqp.exceptions.NotFound:
                    missing.append(name)
                    channel = conn.channel()  # the broker closed the other one
            details["queues"] = depths
            if missing:
                return False, {**details, "status": "queues missing", "missing_queues": missing}
            return True, {**details, "status": "connected"}
        except amqp.exceptions.AccessRefused:
            return False, {**details, "status": "login refused"}
        except Exception as exc:  # the contract: health_check never raises
            return False, {**details, "status": "unreachable", "error": redact(str(exc)) or type(exc).__name__}
        finally:
            try:
                conn.release()
            except Exception as exc:
                log.debug("closing the health probe connection failed: %s", redact(str(exc)))

    # ------------------------------------------------------------------ queues

    def create_queue(self, name: str, dead_letter: bool = True) -> None:
        """Declare a durable queue and, unless ``dead_letter=False``, ``<name>.dead-letter`` wired as its DLX target."""
        names = [name]
        arguments: dict[str, Any] = {}
        if self.queue_type != "classic":
            arguments["x-queue-type"] = self.queue_type
        if dead_letter and not name.endswith(DEAD_LETTER_SUFFIX):
            dead = name + DEAD_LETTER_SUFFIX
            names.append(dead)
            queue_arguments = {**arguments, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
        else:
            dead, queue_arguments = None, arguments

        def declare(session: _Session) -> None:
            if dead is not None:
                session.channel.queue_declare(dead, durable=True, auto_delete=False, arguments=arguments)
            session.channel.queue_declare(name, durable=True, auto_delete=False, arguments=queue_arguments)

        self._run(f"create_queue({name!r})", declare)
        with self._lock:
            self._declared.update(names)

    def create_topic(self, topic: str) -> None:
        """Declare the durable fan-out exchange ``topic`` bound to the durable queue ``topic`` (idempotent)."""
        self.create_queue(topic)

        def declare(session: _Session) -> None:
            session.channel.exchange_declare(topic, "fanout", durable=True, auto_delete=False)
            session.channel.queue_bind(topic, exchange=topic, routing_key="")

        self._run(f"create_topic({topic!r})", declare)

    def publish_topic(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish through the exchange ``topic``: its queue gets every message, watchers get copies."""
        if messages:
            run = lambda s: self._publish_batch(s, topic, messages, exchange=topic)  # noqa: E731
            self._run(f"publish to topic {topic!r}", run, publisher=True)

    def watch(self, topic: str) -> _Watch:
        """An exclusive, auto-deleted queue bound to ``topic`` on a connection of its own (close it when done)."""
        connection = self._connection()
        try:
            connection.ensure_connection(max_retries=1, timeout=self.connect_timeout)
            channel = connection.channel()
            channel.exchange_declare(topic, "fanout", durable=True, auto_delete=False, passive=True)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).queue
            channel.queue_bind(queue, exchange=topic, routing_key="")
        except amqp.exceptions.NotFound as exc:
            connection.release()
            raise PluginError(f"no topic named {topic!r} (is the experiment's scorer declared?)") from exc
        except _CONNECTION_ERRORS as exc:
            connection.release()
            raise PluginUnavailable(
                f"watch({topic!r}): RabbitMQ at {self._where()} unavailable: {redact(str(exc))}",
                plugin_type=self.plugin_type,
            ) from exc
        return _Watch(self, connection, channel, queue)

    def delete_queue(self, name: str, dead_letter: bool = True) -> None:
        """Delete a queue (and its dead-letter queue), with whatever it holds, and the topic exchange of the same
        name if there is one. Missing queues and exchanges are ignored."""
        self._run(f"delete topic {name!r}", lambda s: s.channel.exchange_delete(name))
        names = [name, name + DEAD_LETTER_SUFFIX] if dead_letter else [name]
        for queue in names:
            self._run(f"delete_queue({queue!r})", lambda s, q=queue: s.channel.queue_delete(q))
            with self._lock:
                self._declared.discard(queue)

    def flush_queue(self, queue: str) -> int:
        """Purge the ready messages of ``queue``; return how many were removed."""
        return int(self._run(f"flush_queue({queue!r})", lambda s: s.channel.queue_purge(queue) or 0))

    def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (unacked ones are not counted)."""
        return int(
            self._run(f"queue_depth({queue!r})", lambda s: s.channel.queue_declare(queue, passive=True).message_count)
        )

    def queue_depths(self) -> Mapping[str, int]:
        """Depth of every queue this plugin declared; queues deleted meanwhile are left out."""
        with self._lock:
            declared = sorted(self._declared)
        depths = {}
        for name in declared:
            try:
                depths[name] = self.queue_depth(name)
            except PluginUnavailable:
                raise
            except PluginError as exc:
                log.debug("queue %r left out of queue_depths: %s", name, exc)
        return depths

    # ------------------------------------------------------------------ publish

    def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish persistently and return once the broker confirmed every message.

        Confirms are awaited once per call, not per message. After a connection loss the whole call is
        published again on a new connection, so a consumer may see a message twice (use ``message_id``).
        Raises ``PluginError`` if ``queue`` does not exist, ``PluginUnavailable`` if the broker stays away.
        """
        if not messages:
            return
        self._run(f"publish to {queue!r}", lambda s: self._publish_batch(s, queue, messages), publisher=True)

    def _publish_batch(
        self, session: _Session, queue: str, messages: Sequence[OutgoingMessage], exchange: str = ""
    ) -> None:
        channel = session.channel
        session.returned.clear()
        session.nacked = 0
        now = int(time.time())
        for message in messages:
            properties: dict[str, Any] = {"delivery_mode": 2, "timestamp": now}
            if message.content_type:
                properties["content_type"] = message.content_type
            if message.message_id is not None:
                properties["message_id"] = message.message_id
            if message.headers:
                properties["application_headers"] = message.headers
            channel.basic_publish(
                amqp.Message(message.body, **properties), exchange=exchange, routing_key=queue, mandatory=True
            )
            session.publish_seq += 1
            session.unconfirmed.add(session.publish_seq)
        deadline = time.monotonic() + self.operation_timeout
        while session.unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no publisher confirm within {self.operation_timeout}s")
            try:
                session.drain(remaining)
            except TimeoutError:
                continue
        if session.returned:
            raise PluginError(
                f"publish to {queue!r}: {len(session.returned)} message(s) returned unroutable; "
                "no such queue (declare it with create_queue first)",
                plugin_type=self.plugin_type,
            )
        if session.nacked:
            raise PluginUnavailable(
                f"publish to {queue!r}: the broker refused {session.nacked} message(s); retry later",
                plugin_type=self.plugin_type,
            )

    # ------------------------------------------------------------------ receive

    def pull_data(self, queue: str, max_messages: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Take up to ``max_messages`` ready messages; wait up to ``timeout`` seconds only while none has come."""

        def pull(session: _Session) -> list[Delivery]:
            taken: list[Delivery] = []
            deadline = time.monotonic() + timeout
            while len(taken) < max_messages:
                message = session.channel.basic_get(queue, no_ack=False)
                if message is not None:
                    taken.append(self._delivery(session, message))
                    continue
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    break
                time.sleep(min(_PULL_POLL, remaining))
            return taken

        return self._run(f"pull_data({queue!r})", pull)

    def consume(
        self,
        queue: str,
        handler: BatchHandler,
        batch_size: int = 100,
        batch_timeout_ms: int = 200,
        stop: threading.Event | None = None,
    ) -> None:
        """Call ``handler`` with micro-batches (``batch_size`` messages or ``batch_timeout_ms``) until ``stop`` is set.

        The handler settles what it handled with ``ack``/``reject`` on this thread. If the connection drops,
        consuming resumes on a new one (unsettled deliveries are redelivered). If the handler raises, its
        unsettled deliveries are requeued and the exception propagates.
        """
        stop = stop or threading.Event()
        session = self._session()
        keepalive = _KeepAlive([session, self._session(publisher=True)], self.heartbeat)
        buffer: list[Delivery] = []
        consumer_tag = f"experimenthub-{uuid.uuid4().hex[:12]}"
        subscribed_epoch = -1

        def on_message(message: Any) -> None:
            buffer.append(self._delivery(session, message))

        try:
            while not stop.is_set() and self._initialized:
                try:
                    self._ensure_open(session)
                    if subscribed_epoch != session.epoch:
                        buffer.clear()  # stale deliveries of a lost channel: the broker redelivers them
                        session.channel.basic_consume(queue, consumer_tag=consumer_tag, callback=on_message)
                        subscribed_epoch = session.epoch
                    self._fill(session, buffer, batch_size, batch_timeout_ms / 1000, stop)
                except amqp.exceptions.ChannelError as exc:
                    self._reset_channel(session)
                    raise PluginError(f"consume({queue!r}): {exc}", plugin_type=self.plugin_type) from exc
                except PluginUnavailable as exc:
                    log.warning("consume(%r): %s; still retrying", queue, exc)
                    continue
                except PluginError:
                    if not self._initialized:  # shut down from another thread while consuming
                        return
                    raise
                except _CONNECTION_ERRORS as exc:
                    session.discard()
                    log.warning("consume(%r): connection lost (%s); reconnecting", queue, redact(str(exc)))
                    continue
                if buffer and not stop.is_set():
                    batch = buffer[:batch_size]
                    del buffer[:batch_size]
                    with keepalive.busy():
                        self._dispatch(handler, batch, session)
        finally:
            keepalive.stop()
            self._stop_consuming(session, consumer_tag, subscribed_epoch, buffer)

    def _fill(self, session: _Session, buffer: list[Delivery], size: int, wait: float, stop: threading.Event) -> None:
        """Read deliveries into ``buffer`` until it holds ``size``, ``wait`` passed since the first, or a tick."""
        session.connection.heartbeat_check()
        started = time.monotonic()
        deadline = started + wait if buffer else None
        while len(buffer) < size and not stop.is_set():
            now = time.monotonic()
            if deadline is None and buffer:
                deadline = now + wait
            if deadline is None and now - started >= _TICK:
                return
            if deadline is not None and now >= deadline:
                return
            try:
                session.drain(_TICK if deadline is None else min(deadline - now, _TICK))
            except TimeoutError:
                continue

    def _dispatch(self, handler: BatchHandler, batch: list[Delivery], session: _Session) -> None:
        try:
            handler(batch)
        except BaseException:
            unsettled = [d for d in batch if d.tag.epoch == session.epoch and d.tag.number in session.outstanding]
            self.reject(unsettled, requeue=True)
            raise

    def _stop_consuming(self, session: _Session, consumer_tag: str, epoch: int, buffer: list[Delivery]) -> None:
        """Cancel the consumer and requeue what was received but never handed to the handler."""
        if session.channel is None or epoch != session.epoch:
            return
        try:
            session.channel.basic_cancel(consumer_tag)
        except _CONNECTION_ERRORS as exc:
            session.discard()
            log.debug("cancelling consumer %s failed: %s", consumer_tag, exc)
            return
        self.reject(buffer, requeue=True)

    def _delivery(self, session: _Session, message: Any) -> Delivery:
        info, props = message.delivery_info, message.properties
        number = info["delivery_tag"]
        session.outstanding.add(number)
        stamp = props.get("timestamp")
        headers = dict(props.get("application_headers") or {})
        earlier = headers.get("x-delivery-count")  # quorum queues: deliveries before this one
        return Delivery(
            body=message.body,
            tag=_Tag(session, session.epoch, number),
            message_id=props.get("message_id"),
            headers=headers,
            content_type=props.get("content_type"),
            redelivered=bool(info.get("redelivered")),
            timestamp=float(stamp) if isinstance(stamp, int | float) else None,
            delivery_count=earlier + 1 if isinstance(earlier, int) else None,
        )

    # ------------------------------------------------------------------ settle

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge deliveries: one ``multiple=True`` ack up to the highest tag no other unsettled one precedes.

        Deliveries from a connection that has since been lost are skipped (the broker redelivers them).
        """
        session, numbers = self._settleable(deliveries, "ack")
        if not numbers:
            return
        cut = bisect.bisect_left(numbers, min(session.outstanding, default=numbers[-1] + 1))

        def send(channel: Any) -> None:
            if cut:
                channel.basic_ack(numbers[cut - 1], multiple=True)
            for number in numbers[cut:]:
                channel.basic_ack(number)

        self._send(session, "ack", len(numbers), send)

    def reject(self, deliveries: Sequence[Delivery], requeue: bool = True) -> None:
        """Reject deliveries; with ``requeue=False`` the broker moves them to ``<queue>.dead-letter``."""
        session, numbers = self._settleable(deliveries, "reject")

        def send(channel: Any) -> None:
            for number in numbers:
                channel.basic_reject(number, requeue=requeue)

        if numbers:
            self._send(session, "reject", len(numbers), send)

    def _settleable(self, deliveries: Sequence[Delivery], what: str) -> tuple[_Session, list[int]]:
        """Sorted tags of ``deliveries`` still unsettled on this thread's current channel; marks them settled."""
        session = self._sessions.current()
        numbers: list[int] = []
        stale = 0
        if not deliveries:
            return session, numbers
        for delivery in deliveries:
            tag = delivery.tag
            if not isinstance(tag, _Tag):
                raise TypeError(f"{what}(): {tag!r} is not a RabbitMQPlugin delivery tag")
            if tag.session is not session:
                raise PluginError(
                    f"{what}(): deliveries must be settled on the thread that received them",
                    plugin_type=self.plugin_type,
                )
            if tag.epoch != session.epoch or session.channel is None:
                stale += 1
            elif tag.number in session.outstanding:  # settling twice would close the channel
                numbers.append(tag.number)
        if stale:
            log.warning("%s(): %d delivery(ies) came from a lost connection; the broker redelivers them", what, stale)
        numbers.sort()
        session.outstanding.difference_update(numbers)
        return session, numbers

    def _send(self, session: _Session, what: str, count: int, send: Callable[[Any], None]) -> None:
        """Send settle frames; a lost connection is logged, not raised (the broker redelivers those messages)."""
        try:
            with session.io_lock:
                send(session.channel)
        except _CONNECTION_ERRORS as exc:
            session.discard()
            log.warning(
                "%s of %d delivery(ies) failed, connection lost (%s); the broker redelivers them",
                what,
                count,
                redact(str(exc)),
            )

    # ------------------------------------------------------------------ connections

    def _where(self) -> str:
        scheme = "amqps" if self.ssl is not None else "amqp"
        return f"{scheme}://{self.host}:{self.port}/{quote(self.virtual_host, safe='')}"

    def _connection(self, timeout: float | None = None) -> kombu.Connection:
        io_timeout = timeout or self.operation_timeout
        return kombu.Connection(
            hostname=self.host,
            port=self.port,
            userid=self.username,
            password=self.password,
            virtual_host=self.virtual_host,
            transport="pyamqp",
            heartbeat=self.heartbeat,
            connect_timeout=timeout or self.connect_timeout,
            transport_options={"read_timeout": io_timeout, "write_timeout": io_timeout},
            ssl=self.ssl.amqp_options(self.host) if self.ssl is not None else False,
        )

    def _session(self, publisher: bool = False) -> _Session:
        """This thread's consuming session, or its publishing one: publishes wait for confirms on their own
        connection, so draining them never dispatches (or races with) the consumer's deliveries."""
        if not self._initialized:
            raise PluginError("RabbitMQPlugin is not initialized; call initialize()", plugin_type=self.plugin_type)
        return (self._publishers if publisher else self._sessions).get(_Session)

    def _log_retry(self, exc: BaseException, interval: float) -> None:
        if tls_failure(exc) is not None:
            raise exc  # a certificate problem does not heal with retries: fail now
        log.warning("RabbitMQ at %s unreachable (%s); retrying in %.1fs", self._where(), redact(str(exc)), interval)

    def _open(self, session: _Session, max_retries: int, timeout: float | None) -> None:
        """Connect ``session`` with kombu's retry policy and set up its channel. With ``timeout``, only the retries
        whose back-off fits in it are made (kombu checks its own timeout only before sleeping)."""
        if session.connection is None or not session.connection.connected:
            session.discard()
            conn = self._connection()
            if timeout is not None:
                max_retries = min(max_retries, self._retries_within(timeout))
            try:
                conn.ensure_connection(
                    errback=self._log_retry,
                    max_retries=max_retries,
                    interval_start=self.retry_interval_start,
                    interval_step=self.retry_interval_step,
                    interval_max=self.retry_interval_max,
                    timeout=timeout,
                )
            except amqp.exceptions.AccessRefused as exc:
                raise PluginError(
                    f"RabbitMQ at {self._where()} refused the login of user {self.username!r}: "
                    "check username, password and virtual_host",
                    plugin_type=self.plugin_type,
                ) from exc
            except _CONNECTION_ERRORS as exc:
                if (problem := tls_failure(exc)) is not None:
                    raise PluginError(
                        f"TLS handshake with RabbitMQ at {self._where()} failed: {problem}; check ssl.ca_file "
                        "(the CA that signed the broker's certificate), ssl.cert_file/key_file and the host name",
                        plugin_type=self.plugin_type,
                    ) from exc
                raise PluginUnavailable(
                    f"RabbitMQ at {self._where()} is unreachable: {redact(str(exc))}", plugin_type=self.plugin_type
                ) from exc
            session.connection = conn
        if session.channel is None:
            self._reset_channel(session)

    def _retries_within(self, seconds: float) -> int:
        """How many retries the back-off schedule (start, +step, at most max) sleeps through within ``seconds``."""
        retries, slept, interval = 0, 0.0, self.retry_interval_start
        while retries < self.max_retries and slept + interval <= seconds:
            slept += interval
            retries += 1
            interval = min(interval + self.retry_interval_step, self.retry_interval_max)
        return retries

    def _ensure_open(self, session: _Session) -> None:
        if not self._initialized:
            raise PluginError("RabbitMQPlugin is shut down; call initialize()", plugin_type=self.plugin_type)
        self._open(session, max_retries=self.max_retries, timeout=None)

    def _reset_channel(self, session: _Session) -> None:
        """Open a fresh channel in confirm mode with the prefetch (after a channel error, or on connect)."""
        old = session.channel
        session.channel = None
        session.outstanding.clear()
        session.unconfirmed.clear()
        session.epoch += 1
        if session.connection is None:
            return
        if old is not None:
            try:
                old.close()
            except Exception as exc:
                log.debug("closing a broken channel failed: %s", exc)
        channel = session.connection.channel()
        channel.confirm_select()
        channel.basic_qos(0, self.prefetch, False)
        channel.events["basic_ack"].add(session.on_confirm)
        channel.events["basic_nack"].add(session.on_nack)
        channel.events["basic_return"].add(session.on_return)
        session.publish_seq = 0
        session.channel = channel

    def _run(self, what: str, op: Callable[[_Session], T], publisher: bool = False) -> T:
        """Run ``op`` on this thread's channel; on a lost connection reconnect (with backoff) and run it again."""
        session = self._session(publisher)
        attempt = 1
        while True:
            try:
                with session.io_lock:
                    self._ensure_open(session)
                    session.connection.heartbeat_check()
                    return op(session)
            except amqp.exceptions.ChannelError as exc:
                self._reset_channel(session)
                raise PluginError(f"{what}: {exc}", plugin_type=self.plugin_type) from exc
            except _CONNECTION_ERRORS as exc:
                session.discard()
                if attempt >= _OP_ATTEMPTS:
                    raise PluginUnavailable(
                        f"{what}: RabbitMQ at {self._where()} unavailable: {redact(str(exc))}",
                        plugin_type=self.plugin_type,
                    ) from exc
                log.warning("%s: connection lost (%s); reconnecting", what, redact(str(exc)))
                attempt += 1


class _Watch:
    """A topic watcher: copies arrive in its own exclusive queue, taken without acks (``no_ack``)."""

    def __init__(self, plugin: RabbitMQPlugin, connection: kombu.Connection, channel: Any, queue: str) -> None:
        self._plugin, self._connection, self._channel, self.queue = plugin, connection, channel, queue

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Delivery]:
        taken: list[Delivery] = []
        deadline = time.monotonic() + timeout
        try:
            self._connection.heartbeat_check()
            while len(taken) < max_messages:
                message = self._channel.basic_get(self.queue, no_ack=True)
                if message is not None:
                    properties = message.properties
                    taken.append(
                        Delivery(
                            body=message.body if isinstance(message.body, bytes) else bytes(message.body),
                            tag=None,
                            message_id=_text(properties.get("message_id")),
                            headers=dict(properties.get("application_headers") or {}),
                            content_type=_text(properties.get("content_type")),
                            timestamp=properties.get("timestamp"),
                        )
                    )
                    continue
                if taken or time.monotonic() >= deadline:
                    break
                time.sleep(_PULL_POLL)
        except _CONNECTION_ERRORS as exc:
            raise PluginUnavailable(
                f"watch({self.queue!r}): connection lost: {redact(str(exc))}", plugin_type=self._plugin.plugin_type
            ) from exc
        return taken

    def close(self) -> None:
        try:
            self._connection.release()  # the exclusive queue goes with the connection
        except Exception as exc:
            log.debug("closing a watch connection failed: %s", redact(str(exc)))


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
