"""``LocalStreamPlugin``: the embedded ``DataStreamPlugin``, durable queues in one SQLite file, no server.

>>> stream = LocalStreamPlugin(path="~/.experimenthub/stream.sqlite")
>>> stream.initialize()
>>> stream.create_queue("pump.input")                  # also creates "pump.input.dead-letter"
>>> stream.publish("pump.input", [OutgoingMessage(b'[{"t": 1}]')])   # returns once committed
>>> batch = stream.pull_data("pump.input", max_messages=100)
>>> stream.ack(batch)

Why not kombu's SQLAlchemy transport: its ``_get`` marks a row ``visible=False`` and commits, and the unacked state
lives only in the consumer's memory. A crash therefore loses every unacked message for good (the rows stay
invisible), a clean close re-publishes copies and leaves the old rows behind, and each get is its own transaction.
"Nothing is lost" matters more here than reusing kombu, so this module keeps a small table of its own:

* a delivery is a *lease*: the row stays in the table, marked with the consumer's token, its pid, and a
  ``visibility_timeout`` after which it becomes ready again; ``ack`` deletes it, ``reject`` clears or moves it;
* leases of a process that no longer runs are released at ``initialize`` and every few seconds while pulling, so
  unacked messages come back right after a crash; ``shutdown`` releases this instance's own leases;
* a batch is taken, published or acked in one ``BEGIN IMMEDIATE`` transaction (WAL mode), so it is fast enough
  for a demo and safe for several processes sharing the file (competing consumers).

Each thread uses its own ``sqlite3`` connection; deliveries may be settled from any thread.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from framework.errors import PluginError, PluginUnavailable
from framework.plugins.datastream import (
    DEAD_LETTER_SUFFIX,
    BatchHandler,
    DataStreamPlugin,
    Delivery,
    OutgoingMessage,
)
from framework.plugins.per_thread import PerThread
from framework.plugins.settings import LocalStreamConfig, validated_by
from framework.processes import process_alive

__all__ = ["LocalStreamPlugin"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, dead_letter TEXT);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    message_id TEXT,
    headers TEXT,
    content_type TEXT,
    published_at REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    lease_pid INTEGER,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, id);
CREATE INDEX IF NOT EXISTS messages_by_lease ON messages (lease);
CREATE TABLE IF NOT EXISTS recent (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    body BLOB NOT NULL,
    message_id TEXT,
    headers TEXT,
    content_type TEXT,
    published_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recent_by_topic ON recent (topic, id);
"""
RECENT_LIMIT = 1000  # messages kept per topic for watchers (the bounded log of recent predictions)
_READY = "(lease IS NULL OR lease_until < ?)"
_REAP_EVERY = 5.0  # seconds between checks for leases held by dead processes
_CHUNK = 500  # ids per "IN (...)" clause, below SQLite's variable limit


class LocalStreamPlugin(DataStreamPlugin):
    """Durable local queues in a SQLite file with at-least-once delivery and dead-letter queues.

    Parameters
    ----------
    path:
        The SQLite file (parent folders are created), e.g. under the hub's state folder.
    polling_interval:
        Seconds between polls of an empty queue in ``consume`` and ``pull_data``.
    visibility_timeout:
        Seconds after which a message taken and not settled is delivered again, even if its consumer still runs.
    busy_timeout:
        Seconds to wait for another process's write lock before ``PluginUnavailable``.
    synchronous:
        SQLite ``PRAGMA synchronous``: ``"FULL"`` survives power loss, ``"NORMAL"`` survives a process crash.
    """

    plugin_type = "datastream"
    config_model = LocalStreamConfig

    @validated_by(LocalStreamConfig)
    def __init__(
        self,
        path: str | os.PathLike[str],
        polling_interval: float = 0.05,
        visibility_timeout: float = 600.0,
        busy_timeout: float = 10.0,
        synchronous: str = "FULL",
    ) -> None:
        self.path = path
        self.polling_interval = polling_interval
        self.visibility_timeout = visibility_timeout
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self._connections: PerThread[sqlite3.Connection] = PerThread(sqlite3.Connection.close)
        self._token: str | None = None
        self._last_reap = 0.0

    # ------------------------------------------------------------------ lifecycle

    def initialize(self) -> None:
        """Create the file and schema and release leases of processes that died. Idempotent."""
        if self._token is not None:
            return
        try:
            self._file().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PluginError(f"LocalStreamPlugin: cannot create {self._file().parent}: {exc}") from exc
        self._token = uuid.uuid4().hex
        try:
            self._db().executescript(_SCHEMA)
            self._reap(force=True)
        except PluginError:
            self._token = None
            raise

    def shutdown(self) -> None:
        """Requeue this instance's unsettled deliveries and close every connection. Idempotent."""
        if self._token is not None:
            try:
                with self._tx() as db:
                    db.execute("UPDATE messages SET lease = NULL, lease_pid = NULL WHERE lease = ?", (self._token,))
            except PluginError as exc:
                log.warning("could not requeue unsettled deliveries at shutdown (%s); they return after a restart", exc)
        self._token = None
        self._connections.close_all()

    def connect(self) -> None:
        """Open the calling thread's connection now (it is otherwise opened on first use)."""
        self._db()

    def disconnect(self) -> None:
        """Close the calling thread's connection. Its deliveries stay leased to this instance."""
        self._connections.discard_current()

    def health_check(self) -> tuple[bool, dict]:
        """Open the file, read the queue depths. Never raises."""
        details: dict[str, Any] = {"path": str(self._file()), "sqlite_version": sqlite3.sqlite_version}
        if self._token is None:
            return False, {**details, "status": "not initialized"}
        try:
            with self._probe() as db:
                rows = db.execute(
                    f"SELECT q.name, COUNT(m.id) FROM queues q LEFT JOIN messages m ON m.queue = q.name AND {_READY}"
                    " GROUP BY q.name ORDER BY q.name",
                    (time.time(),),
                ).fetchall()
        except Exception as exc:  # the contract: health_check never raises
            return False, {**details, "status": "unavailable", "error": str(exc)}
        return True, {**details, "status": "ok", "queues": dict(rows)}

    # ------------------------------------------------------------------ queues

    def create_queue(self, name: str, dead_letter: bool = True) -> None:
        """Create a queue (idempotent) and, unless ``dead_letter=False``, ``<name>.dead-letter`` as its DLQ."""
        dead = name + DEAD_LETTER_SUFFIX if dead_letter and not name.endswith(DEAD_LETTER_SUFFIX) else None
        with self._tx() as db:
            if dead is not None:
                db.execute("INSERT OR IGNORE INTO queues (name, dead_letter) VALUES (?, NULL)", (dead,))
            db.execute(
                "INSERT INTO queues (name, dead_letter) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET dead_letter = COALESCE(excluded.dead_letter, dead_letter)",
                (name, dead),
            )

    def delete_queue(self, name: str, dead_letter: bool = True) -> None:
        """Delete a queue (and its dead-letter queue) with whatever it holds. Missing queues are ignored."""
        names = (name, name + DEAD_LETTER_SUFFIX) if dead_letter else (name,)
        with self._tx() as db:
            for queue in names:
                db.execute("DELETE FROM messages WHERE queue = ?", (queue,))
                db.execute("DELETE FROM queues WHERE name = ?", (queue,))

    def flush_queue(self, queue: str) -> int:
        """Delete the ready messages of ``queue``; return how many were removed."""
        with self._tx() as db:
            self._require_queue(db, queue)
            return db.execute(f"DELETE FROM messages WHERE queue = ? AND {_READY}", (queue, time.time())).rowcount

    def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (taken and unsettled ones are not counted)."""
        with self._tx() as db:
            self._require_queue(db, queue)
            row = db.execute(f"SELECT COUNT(*) FROM messages WHERE queue = ? AND {_READY}", (queue, time.time()))
            return int(row.fetchone()[0])

    def queue_depths(self) -> Mapping[str, int]:
        """Depth of every queue in the file (queues persist across restarts, so that is every one declared)."""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT q.name, COUNT(m.id) FROM queues q LEFT JOIN messages m ON m.queue = q.name AND {_READY}"
                " GROUP BY q.name ORDER BY q.name",
                (time.time(),),
            ).fetchall()
        return dict(rows)

    # ------------------------------------------------------------------ publish / receive

    def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Append ``messages`` in one transaction; return once committed. ``PluginError`` if the queue is unknown."""
        if not messages:
            return
        now = time.time()
        try:
            rows = [
                (queue, m.body, m.message_id, json.dumps(m.headers) if m.headers else None, m.content_type, now)
                for m in messages
            ]
        except (TypeError, ValueError) as exc:
            raise PluginError(f"publish to {queue!r}: headers must be JSON-serialisable: {exc}") from exc
        with self._tx() as db:
            self._require_queue(db, queue)
            db.executemany(
                "INSERT INTO messages (queue, body, message_id, headers, content_type, published_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def publish_topic(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish to the queue ``topic`` and, in the same transaction, to its log of the last ``RECENT_LIMIT``."""
        if not messages:
            return
        now = time.time()
        rows = [
            (topic, m.body, m.message_id, json.dumps(m.headers) if m.headers else None, m.content_type, now)
            for m in messages
        ]
        columns = "(queue, body, message_id, headers, content_type, published_at) VALUES (?, ?, ?, ?, ?, ?)"
        with self._tx() as db:
            self._require_queue(db, topic)
            db.executemany(f"INSERT INTO messages {columns}", rows)
            db.executemany(f"INSERT INTO recent {columns.replace('queue', 'topic')}", rows)
            db.execute(
                "DELETE FROM recent WHERE topic = ? AND id <= (SELECT MAX(id) FROM recent WHERE topic = ?) - ?",
                (topic, topic, RECENT_LIMIT),
            )

    def watch(self, topic: str) -> _Watch:
        """Follow the log of ``topic`` from now on; nothing is taken from its queue."""
        with self._tx() as db:
            self._require_queue(db, topic)
            last = db.execute("SELECT COALESCE(MAX(id), 0) FROM recent WHERE topic = ?", (topic,)).fetchone()[0]
        return _Watch(self, topic, int(last))

    def pull_data(self, queue: str, max_messages: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Take up to ``max_messages`` ready messages; poll up to ``timeout`` seconds only while none has come."""
        deadline = time.monotonic() + timeout
        while True:
            taken = self._take(queue, max_messages)
            remaining = deadline - time.monotonic()
            if taken or remaining <= 0:
                return taken
            time.sleep(min(self.polling_interval, remaining))

    def consume(
        self,
        queue: str,
        handler: BatchHandler,
        batch_size: int = 100,
        batch_timeout_ms: int = 200,
        stop: threading.Event | None = None,
    ) -> None:
        """Call ``handler`` with micro-batches (``batch_size`` messages or ``batch_timeout_ms``) until ``stop`` is set.

        The handler settles what it handled with ``ack``/``reject``. If it raises, its unsettled deliveries are
        requeued and the exception propagates.
        """
        stop = stop or threading.Event()
        while not stop.is_set() and self._token is not None:
            batch = self._fill(queue, batch_size, batch_timeout_ms / 1000, stop)
            if not batch:
                continue
            if stop.is_set():
                self.reject(batch, requeue=True)
                return
            try:
                handler(batch)
            except BaseException:
                self.reject(batch, requeue=True)  # only those still held are touched
                raise

    def _fill(self, queue: str, size: int, wait: float, stop: threading.Event) -> list[Delivery]:
        """Take until ``size`` messages, ``wait`` seconds after the first, or one idle poll."""
        batch: list[Delivery] = []
        deadline: float | None = None
        while len(batch) < size and not stop.is_set():
            got = self._take(queue, size - len(batch))
            batch += got
            now = time.monotonic()
            if batch and deadline is None:
                deadline = now + wait
            if len(batch) >= size or (deadline is not None and now >= deadline):
                break
            if not got:
                pause = self.polling_interval if deadline is None else min(self.polling_interval, deadline - now)
                stop.wait(pause)
                if not batch:
                    break
        return batch

    def _take(self, queue: str, limit: int) -> list[Delivery]:
        """Lease up to ``limit`` ready messages of ``queue`` in one transaction."""
        self._reap()
        now = time.time()
        with self._tx() as db:
            rows = db.execute(
                "UPDATE messages SET lease = ?, lease_pid = ?, lease_until = ?, deliveries = deliveries + 1"
                f" WHERE id IN (SELECT id FROM messages WHERE queue = ? AND {_READY} ORDER BY id LIMIT ?)"
                " RETURNING id, body, message_id, headers, content_type, published_at, deliveries",
                (self._token, os.getpid(), now + self.visibility_timeout, queue, now, limit),
            ).fetchall()
            if not rows:
                self._require_queue(db, queue)
        rows.sort()
        return [
            Delivery(
                body=bytes(body),
                tag=row_id,
                message_id=message_id,
                headers=json.loads(headers) if headers else {},
                content_type=content_type,
                redelivered=deliveries > 1,
                timestamp=published_at,
                delivery_count=deliveries,
            )
            for row_id, body, message_id, headers, content_type, published_at, deliveries in rows
        ]

    # ------------------------------------------------------------------ settle

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Delete the acknowledged messages in one transaction."""
        ids = [d.tag for d in deliveries]
        with self._tx() as db:
            done = sum(
                db.execute(
                    f"DELETE FROM messages WHERE lease = ? AND id IN ({','.join('?' * len(chunk))})",
                    (self._token, *chunk),
                ).rowcount
                for chunk in _chunks(ids)
            )
        self._warn_lost("ack", len(ids) - done)

    def reject(self, deliveries: Sequence[Delivery], requeue: bool = True) -> None:
        """Requeue, or (``requeue=False``) move to ``<queue>.dead-letter`` with ``x-first-death-*`` headers."""
        ids = [d.tag for d in deliveries]
        if not ids:
            return
        with self._tx() as db:
            if requeue:
                done = sum(
                    db.execute(
                        "UPDATE messages SET lease = NULL, lease_pid = NULL"
                        f" WHERE lease = ? AND id IN ({','.join('?' * len(chunk))})",
                        (self._token, *chunk),
                    ).rowcount
                    for chunk in _chunks(ids)
                )
            else:
                done = self._dead_letter(db, ids)
        self._warn_lost("reject", len(ids) - done)

    def _dead_letter(self, db: sqlite3.Connection, ids: list[int]) -> int:
        rows = [
            row
            for chunk in _chunks(ids)
            for row in db.execute(
                "SELECT m.id, m.queue, q.dead_letter, m.body, m.message_id, m.headers, m.content_type"
                " FROM messages m LEFT JOIN queues q ON q.name = m.queue"
                f" WHERE m.lease = ? AND m.id IN ({','.join('?' * len(chunk))}) ORDER BY m.id",
                (self._token, *chunk),
            )
        ]
        now = time.time()
        moved = [
            (dead, body, message_id, json.dumps(_death_headers(headers, queue)), content_type, now)
            for _, queue, dead, body, message_id, headers, content_type in rows
            if dead is not None
        ]
        db.executemany(
            "INSERT INTO messages (queue, body, message_id, headers, content_type, published_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            moved,
        )
        db.executemany("DELETE FROM messages WHERE id = ?", [(row[0],) for row in rows])
        if len(moved) < len(rows):
            log.warning(
                "reject(requeue=False): %d message(s) had no dead-letter queue and were dropped", len(rows) - len(moved)
            )
        return len(rows)

    def _warn_lost(self, what: str, lost: int) -> None:
        if lost:
            log.warning(
                "%s(): %d delivery(ies) were no longer held by this consumer (lease lapsed or released);"
                " they are delivered again",
                what,
                lost,
            )

    # ------------------------------------------------------------------ storage

    def _file(self) -> Path:
        return Path(self.path).expanduser()

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self._file(), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as exc:
            raise PluginUnavailable(
                f"LocalStreamPlugin: cannot open {self._file()}: {exc}", plugin_type=self.plugin_type
            ) from exc
        return db

    def _db(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        if self._token is None:
            raise PluginError("LocalStreamPlugin is not initialized; call initialize()", plugin_type=self.plugin_type)
        return self._connections.get(self._open)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on this thread's connection; SQLite errors become plugin errors."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise PluginUnavailable(f"LocalStreamPlugin: {self._file()}: {exc}", plugin_type=self.plugin_type) from exc
        except sqlite3.Error as exc:
            raise PluginError(f"LocalStreamPlugin: {self._file()}: {exc}", plugin_type=self.plugin_type) from exc

    @contextmanager
    def _probe(self) -> Iterator[sqlite3.Connection]:
        """A short-lived read-only connection, usable from any thread."""
        db = sqlite3.connect(f"{self._file().as_uri()}?mode=ro", uri=True, timeout=2.0)
        try:
            yield db
        finally:
            db.close()

    def _require_queue(self, db: sqlite3.Connection, queue: str) -> None:
        if db.execute("SELECT 1 FROM queues WHERE name = ?", (queue,)).fetchone() is None:
            raise PluginError(
                f"no queue named {queue!r} in {self._file()} (declare it with create_queue first)",
                plugin_type=self.plugin_type,
            )

    def _reap(self, force: bool = False) -> None:
        """Release leases held by processes that no longer run (checked at most every few seconds)."""
        now = time.monotonic()
        if not force and now - self._last_reap < _REAP_EVERY:
            return
        self._last_reap = now
        with self._tx() as db:
            pids = [pid for (pid,) in db.execute("SELECT DISTINCT lease_pid FROM messages WHERE lease IS NOT NULL")]
            dead = [pid for pid in pids if not process_alive(pid)]
            for pid in dead:
                released = db.execute(
                    "UPDATE messages SET lease = NULL, lease_pid = NULL WHERE lease_pid = ?", (pid,)
                ).rowcount
                log.info("requeued %d unsettled delivery(ies) of stopped process %s", released, pid)


def _death_headers(headers: str | None, queue: str) -> dict[str, Any]:
    return {
        **(json.loads(headers) if headers else {}),
        "x-first-death-queue": queue,
        "x-first-death-reason": "rejected",
    }


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


class _Watch:
    """Reads a topic's log after a cursor; a watcher that falls more than ``RECENT_LIMIT`` behind skips ahead."""

    def __init__(self, plugin: LocalStreamPlugin, topic: str, cursor: int) -> None:
        self._plugin, self.topic, self._cursor = plugin, topic, cursor

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            with self._plugin._tx() as db:
                rows = db.execute(
                    "SELECT id, body, message_id, headers, content_type, published_at FROM recent"
                    " WHERE topic = ? AND id > ? ORDER BY id LIMIT ?",
                    (self.topic, self._cursor, max_messages),
                ).fetchall()
            if rows or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if rows:
            self._cursor = rows[-1][0]
        return [
            Delivery(
                bytes(body),
                None,
                message_id,
                json.loads(headers) if headers else {},
                content_type,
                timestamp=published_at,
            )
            for _, body, message_id, headers, content_type, published_at in rows
        ]

    def close(self) -> None:
        """Nothing to release: the log lives in the plugin's file."""
