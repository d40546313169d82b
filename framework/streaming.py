"""The stream scorer: ``<name>.input`` -> predict in micro-batches -> ``<name>.predictions``, losing nothing.

Per micro-batch (N messages or T ms, whichever comes first):

1. decode every message (``records.decode_body``: records or split JSON, or Arrow IPC); a bad one goes to
   ``<name>.input.dead-letter`` with the reason in the ``x-error-reason`` header (the field in ``x-error-field``
   and the exception type in ``x-error-type``). So does a message delivered more than ``max_redeliveries`` times
   without being scored (a poison message that keeps failing its batch, or kills its scorer);
2. predict once for all good records (vectorised) with ``Experiment.predict_stream``, continuing the state of
   the previous batch (alarm persistence, lags), so results never depend on how the stream was batched; if that
   raises anything, score message by message to isolate the bad ones, which go to the dead-letter queue;
3. publish one prediction message per input message, in the input's format unless ``output_format`` says
   otherwise (``input_id`` names the input, ``timestamp`` is the scoring time), and wait for the confirms;
4. only then ack the inputs and keep the new state. A failure before that rejects them back onto the queue
   (redelivered later) and keeps the old state.

A crash at any point therefore re-delivers the batch: predictions are at-least-once, and the prediction's
``message_id`` equals the input's so consumers can de-duplicate. The input id is the body's ``id``, else the
AMQP ``message_id``, else ``sha256:`` and the first 32 hex digits of the body's SHA-256 (stable across
redeliveries). Several scorers on one queue compete (each
carries its own state, so state spans batches only within one scorer).

The scorer knows the hub only through ``ModelSource``, the "model in service" protocol.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import chain, pairwise
from typing import Any, Protocol

import numpy as np
import pandas as pd

from framework.errors import ConfigError, DataValidationError, HubError, PluginUnavailable, redact
from framework.Experiment import Experiment
from framework.monitoring import MonitorUpdate, StreamMonitor, json_safe
from framework.plugins.datastream import (
    DataStreamPlugin,
    Delivery,
    OutgoingMessage,
    dead_letter_queue,
    input_queue,
    prediction_queue,
)
from framework.records import (
    FORMATS,
    MAX_MESSAGE_BYTES,
    DataInput,
    Message,
    decode_body,
    encode_frame,
    encode_parts,
    load_frame,
    records_frame,
    uniform_keys,
)
from framework.store import MONITOR_UPDATED

__all__ = [
    "ModelSource",
    "StreamScorer",
    "StreamStats",
    "declare_queues",
    "delete_queues",
    "events_topic",
    "input_queue",
    "prediction_queue",
    "publish_records",
    "stop_on_signals",
    "supervise",
    "watch_predictions",
]

log = logging.getLogger(__name__)

REASON_HEADER = "x-error-reason"
FIELD_HEADER = "x-error-field"
TYPE_HEADER = "x-error-type"
MAX_REDELIVERIES = 5
_REMEMBERED_FAILURES = 10_000  # input ids whose failed deliveries one scorer remembers (oldest forgotten first)


class ModelSource(Protocol):
    """The model in service, as the scorer needs it (``ExperimentHub`` is one)."""

    def served_version(self, name: str) -> int:
        """The version in service (the champion); ``ExperimentNotFound`` for an unknown experiment."""
        ...

    def load(self, name: str, version: int | None = None) -> Experiment:
        """The fitted experiment of ``version`` (shared: never change it in place)."""
        ...

    def submit_retrain(self, name: str, data: DataInput | None = None) -> str:
        """Queue a retrain job on recent rows; return its id."""
        ...

    def start_monitoring(self, name: str, scorer_id: str) -> str:
        """Open the monitoring run of one scorer process in the store; return its id."""
        ...

    def log_monitoring(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        """Log one interval's metrics (batched) at ``step``."""
        ...

    def end_monitoring(self, run_id: str) -> None: ...

    def log_events(self, run_id: str, events: list[dict[str, Any]]) -> None:
        """Record drift, alert and retrain events in the monitoring run (the store is their system of record)."""
        ...

    def reference_data(self, name: str, version: int) -> pd.DataFrame | None:
        """The rows ``version`` was trained on (calibrates its drift monitor at once), or None."""
        ...


def events_topic(name: str) -> str:
    """The topic of ``name``'s drift, alert and retrain events (JSON, one event per message)."""
    return f"{name}.events"


def declare_queues(stream: DataStreamPlugin, name: str) -> None:
    """Declare the experiment's durable input queue (with its dead-letter queue) and its prediction topic: an
    exchange bound to the durable prediction queue, so observers can watch without taking (idempotent)."""
    stream.create_queue(input_queue(name))
    stream.create_topic(prediction_queue(name))
    stream.create_topic(events_topic(name))


def delete_queues(stream: DataStreamPlugin, name: str) -> None:
    """Delete the experiment's queues with whatever they hold (``experimenthub delete --purge-queues``)."""
    stream.delete_queue(input_queue(name))
    stream.delete_queue(prediction_queue(name))
    stream.delete_queue(events_topic(name))


def publish_records(
    stream: DataStreamPlugin,
    name: str,
    data: DataInput,
    *,
    batch_size: int = 100,
    fmt: str = "records",
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Publish ``data`` to ``<name>.input`` in messages of ``batch_size`` records in ``fmt``; return the ids.

    The publish is confirmed and mandatory: a queue that does not exist raises instead of losing the records.
    ``on_progress(n_records_published)`` is called after each confirmed group of messages.
    """
    if batch_size < 1:
        raise ConfigError("must be at least 1", field="batch_size")
    if fmt not in FORMATS:
        raise ConfigError(f"choose one of {', '.join(FORMATS)}", field="format")
    frame = load_frame(data)
    declare_queues(stream, name)
    ids: list[str] = []
    group = max(1, 1000 // batch_size)  # messages per confirmed publish call
    starts = range(0, len(frame), batch_size)
    for first in range(0, len(starts), group):
        messages = []
        for start in starts[first : first + group]:
            message_id = uuid.uuid4().hex
            body, content_type = encode_frame(frame.iloc[start : start + batch_size], fmt, message_id=message_id)
            messages.append(OutgoingMessage(body, message_id=message_id, content_type=content_type))
            ids.append(message_id)
        stream.publish(input_queue(name), messages)
        if on_progress is not None:
            on_progress(min(len(frame), (first + group) * batch_size))
    return ids


@dataclass
class StreamStats:
    """Counters of one scorer run."""

    messages: int = 0
    records: int = 0
    alarms: int = 0
    predictions_published: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retrain_jobs: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return self.records / max(time.monotonic() - self.started, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "records_per_s": round(self.rate(), 1)}


@dataclass
class _Item:
    delivery: Delivery
    message_id: str
    message: Message

    @property
    def columns(self) -> frozenset[str] | None:
        """The column set of every row, or None when the records disagree."""
        if self.message.records is None:
            return frozenset(self.message.columns)
        return uniform_keys(self.message.records)


Scored = list[tuple[_Item, pd.DataFrame]]


class StreamScorer:
    """Score ``<name>.input`` with the experiment's served model until ``stop`` is set.

    >>> stop = threading.Event()
    >>> stats = StreamScorer(hub, hub.get_plugin("datastream"), "pump-7").run(stop)   # elsewhere: stop.set()
    """

    def __init__(
        self,
        models: ModelSource,
        stream: DataStreamPlugin,
        name: str,
        *,
        batch_size: int = 50,
        batch_timeout_ms: int = 200,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        model_refresh_s: float = 30.0,
        log_every_s: float = 10.0,
        output_format: str | None = None,
        max_redeliveries: int = MAX_REDELIVERIES,
    ) -> None:
        if output_format is not None and output_format not in FORMATS:
            raise ConfigError(f"choose one of {', '.join(FORMATS)}", field="output_format")
        if max_redeliveries < 0:
            raise ConfigError("must be 0 or more", field="max_redeliveries")
        self.models, self.stream, self.name = models, stream, name
        self.batch_size, self.batch_timeout_ms = batch_size, batch_timeout_ms
        self.max_message_bytes, self.model_refresh_s, self.log_every_s = max_message_bytes, model_refresh_s, log_every_s
        self.output_format, self.max_redeliveries = output_format, max_redeliveries
        self.stats = StreamStats()
        self._model: Any = None
        self._model_version: int | None = None
        self._state: Any = None  # predict_stream's state after the last acked batch
        self._together: pd.DataFrame | None = None  # the current batch's predictions when scored at once
        self._together_input: pd.DataFrame | None = None  # and its input rows
        self._model_checked_at = float("-inf")
        self._last_log = time.monotonic()
        self._monitor: StreamMonitor | None = None
        self._settled: set[int] = set()  # deliveries of the current batch already acked (dead-lettered or scored)
        # failed deliveries per input key, for transports that do not count deliveries: (failures, last error)
        self._failures: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self.scorer_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._monitor_run: str | None = None
        self._interval = (0, 0, 0, time.monotonic())  # records, alarms, dead-lettered at the interval's start
        self._step = 0

    def run(self, stop: threading.Event) -> StreamStats:
        """Declare the queues and consume until ``stop`` is set; the batch in hand finishes first."""
        self._refresh_model()  # fails fast on an unknown experiment
        declare_queues(self.stream, self.name)
        try:
            self._monitor_run = self.models.start_monitoring(self.name, self.scorer_id)
        except HubError as exc:  # monitoring never stops scoring
            log.warning("stream %s: no monitoring run (%s); metrics are only logged", self.name, redact(str(exc)))
        log.info("scoring %s -> %s", input_queue(self.name), prediction_queue(self.name))
        self.stream.consume(
            input_queue(self.name),
            self.handle,
            batch_size=self.batch_size,
            batch_timeout_ms=self.batch_timeout_ms,
            stop=stop,
        )
        self._log_progress(force=True)
        if self._monitor_run is not None:
            try:
                self.models.end_monitoring(self._monitor_run)
            except HubError as exc:
                log.warning("stream %s: could not end the monitoring run: %s", self.name, redact(str(exc)))
        return self.stats

    # -- one micro-batch ------------------------------------------------------------------------------------
    def handle(self, deliveries: list[Delivery]) -> None:
        """Score, publish, then ack one micro-batch. Failures before the publish confirm requeue the batch."""
        self._settled.clear()
        self._together = self._together_input = None
        try:
            good = self._decode_all(self._drop_poison(deliveries))
            if good:
                self._refresh_model()
                scored, state = self._score(good)
                if scored:  # every message may have been dead-lettered by the model (wrong columns)
                    self._publish_predictions(scored)
                    self.stream.ack([item.delivery for item, _ in scored])
                    self._settled.update(id(item.delivery) for item, _ in scored)
                    self._state = state
                    if self._failures:  # usually empty: no key (a body hash, maybe) to compute
                        for item, _ in scored:
                            self._failures.pop(_delivery_key(item.delivery), None)
                    self._absorb(scored)
                    self._after_batch(scored)
        except Exception as exc:
            error = redact(f"{type(exc).__name__}: {exc}")
            unsettled = [d for d in deliveries if id(d) not in self._settled]
            log.error(
                "batch of %d message(s) failed; %d go back to the queue: %s", len(deliveries), len(unsettled), error
            )
            if not isinstance(exc, PluginUnavailable):  # a transport outage is no message's fault
                self._count_failures(unsettled, error)
            try:
                self.stream.reject(unsettled, requeue=True)
            except HubError as reject_error:  # the connection is gone: the broker redelivers them anyway
                log.warning("could not requeue the batch (%s); it will be redelivered", redact(str(reject_error)))
            time.sleep(1.0)  # back off before the redelivery
            return
        self.stats.batches += 1
        self._log_progress()

    def _drop_poison(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Dead-letter the deliveries redelivered more than ``max_redeliveries`` times; return the others.

        The count is the transport's (the local queue, RabbitMQ quorum queues), else the failed batches this
        scorer saw the message in (RabbitMQ classic queues: a message that kills its scorer is not counted)."""
        keep, poison = [], []
        for delivery in deliveries:
            failures, last_error = self._failures.get(_delivery_key(delivery), (0, "")) if self._failures else (0, "")
            redeliveries = max(failures, (delivery.delivery_count or 1) - 1)
            if redeliveries <= self.max_redeliveries:
                keep.append(delivery)
                continue
            reason = f"redelivered {redeliveries} times without being scored"
            exc = DataValidationError(reason + (f"; last error: {last_error}" if last_error else ""), field="")
            poison.append((delivery, exc))
        self.stats.messages += len(poison)
        self._dead_letter(poison)
        for delivery, _ in poison:
            self._failures.pop(_delivery_key(delivery), None)
        return keep

    def _count_failures(self, deliveries: list[Delivery], error: str) -> None:
        for delivery in deliveries:
            key = _delivery_key(delivery)
            failures, _ = self._failures.pop(key, (0, ""))
            self._failures[key] = (failures + 1, error)
        while len(self._failures) > _REMEMBERED_FAILURES:
            self._failures.popitem(last=False)

    def _decode_all(self, deliveries: list[Delivery]) -> list[_Item]:
        """Decode each message; one that raises anything is dead-lettered with its reason."""
        good, bad = [], []
        for delivery in deliveries:
            try:
                message = decode_body(delivery.body, delivery.content_type, self.max_message_bytes)
            except Exception as exc:
                bad.append((delivery, exc))
                continue
            message_id = message.message_id or delivery.message_id or _body_id(delivery.body)
            good.append(_Item(delivery, message_id, message))
        self.stats.messages += len(deliveries)
        self._dead_letter(bad)
        return good

    def _score(self, items: list[_Item]) -> tuple[Scored, Any]:
        """Predict all items at once; if that raises, one by one so only the bad messages are dead-lettered.

        Returns the predictions and the model's state after them (not yet kept: see ``handle``).
        """
        columns = items[0].columns
        if columns is not None and all(item.columns == columns for item in items[1:]):
            try:
                scored, state = self._predict_together(items)
                if scored is not None:
                    return scored, state
            except Exception as exc:  # the messages one by one tell which one it was
                log.info("stream %s: batch refused (%s); scoring message by message", self.name, type(exc).__name__)
        scored, bad, state = [], [], self._state
        for item in items:
            try:
                predictions, state = self._model.predict_stream(item.message.to_frame(), state)
            except Exception as exc:
                bad.append((item.delivery, exc))
                continue
            scored.append((item, predictions))
        self._dead_letter(bad)
        return scored, state

    def _predict_together(self, items: list[_Item]) -> tuple[Scored | None, Any]:
        """One prediction for items that share their columns; None when the model changed the row count."""
        if len(items) == 1:
            frame = items[0].message.to_frame()
        elif all(item.message.records is not None for item in items):
            frame = records_frame(list(chain.from_iterable(item.message.records for item in items)))
        elif all(item.message.table is not None for item in items) and _same_schema(items):
            import pyarrow as pa

            frame = pa.concat_tables([item.message.table for item in items]).to_pandas()
        else:
            frame = pd.concat([item.message.to_frame() for item in items], ignore_index=True)
        predictions, state = self._model.predict_stream(frame, self._state)
        if len(predictions) != len(frame):
            return None, None
        bounds = np.concatenate([[0], np.cumsum([item.message.rows for item in items])]).tolist()
        self._together, self._together_input = predictions, frame
        parts = [predictions.iloc[start:stop] for start, stop in pairwise(bounds)]
        return list(zip(items, parts, strict=True)), state

    def _publish_predictions(self, scored: Scored) -> None:
        """One prediction message per input message; one column conversion for a batch scored together."""
        formats = {self.output_format or item.message.format for item, _ in scored}
        heads = [{"id": item.message_id, "input_id": item.message_id, "experiment": self.name} for item, _ in scored]
        together = self._together
        if together is not None and len(formats) == 1 and len(together) == sum(len(p) for _, p in scored):
            encoded = encode_parts(together, [len(p) for _, p in scored], formats.pop(), heads)
        else:
            encoded = [
                encode_parts(p, [len(p)], self.output_format or item.message.format, [head])[0]
                for (item, p), head in zip(scored, heads, strict=True)
            ]
        messages = [
            OutgoingMessage(
                body=body,
                message_id=item.message_id,
                headers={"input_id": item.message_id, "experiment": self.name},
                content_type=content_type,
            )
            for (item, _), (body, content_type) in zip(scored, encoded, strict=True)
        ]
        self.stream.publish_topic(prediction_queue(self.name), messages)
        self.stats.records += sum(len(predictions) for _, predictions in scored)
        self.stats.alarms += sum(int(p["is_anomaly"].sum()) for _, p in scored if "is_anomaly" in p.columns)
        self.stats.predictions_published += len(messages)

    def _dead_letter(self, bad: list[tuple[Delivery, Exception]]) -> None:
        """Publish each bad message to the dead-letter queue with its reason and exception type, then ack it."""
        if not bad:
            return
        messages = []
        for delivery, exc in bad:
            reason, field_name = _reason(exc)
            headers = {REASON_HEADER: reason, FIELD_HEADER: field_name, TYPE_HEADER: type(exc).__name__}
            messages.append(
                OutgoingMessage(
                    body=delivery.body,
                    message_id=delivery.message_id,
                    headers={**delivery.headers, **headers},
                    content_type=delivery.content_type or "application/octet-stream",
                )
            )
        self.stream.publish(dead_letter_queue(self.name), messages)
        self.stream.ack([delivery for delivery, _ in bad])
        for (delivery, exc), message in zip(bad, messages, strict=True):
            self._settled.add(id(delivery))
            log.warning(
                "message %s -> dead-letter (%s): %s",
                delivery.message_id or _body_id(delivery.body),
                type(exc).__name__,
                message.headers[REASON_HEADER],
            )
        self.stats.dead_lettered += len(bad)

    # -- model, retraining, progress ------------------------------------------------------------------------
    def _refresh_model(self) -> None:
        """Every ``model_refresh_s``, switch to the served version if it changed (a new champion).

        A model that updates in place (``supports_update``, e.g. forecasting) is copied first, so the hub's
        cached model is never changed, and keeps absorbing the stream until the served version changes. While the
        store is unreachable the model in hand keeps serving (its batches are not failed).
        """
        if time.monotonic() - self._model_checked_at < self.model_refresh_s:
            return
        self._model_checked_at = time.monotonic()
        try:
            version = self.models.served_version(self.name)
            model = self.models.load(self.name, version=version) if version != self._model_version else None
        except PluginUnavailable as exc:  # the store is away: keep serving the model in hand
            if self._model is None:
                raise
            log.warning(
                "stream %s: store unreachable (%s); still serving version %s", self.name, exc, self._model_version
            )
            return
        if model is not None:
            self._model = copy.deepcopy(model) if model.supports_update else model
            self._model_version = version
            self._state = None  # a new model starts its own state
            self._monitor = self._new_monitor(model, version)
            log.info("stream %s: serving version %s", self.name, version)

    def _new_monitor(self, model: Experiment, version: int) -> StreamMonitor | None:
        """The drift monitor of a newly served model, calibrated on its training rows when they suffice (else on
        the first windows it sees). A model the monitor cannot read is scored unmonitored."""
        try:
            reference = self.models.reference_data(self.name, version)
        except HubError as exc:
            log.warning("stream %s: no reference rows: %s", self.name, redact(str(exc)))
            reference = None
        for rows in (reference, None) if reference is not None else (None,):
            try:
                return StreamMonitor.for_model(self.name, model, reference=rows)
            except (HubError, AttributeError, KeyError, TypeError, ValueError) as exc:
                reason = redact(str(exc))
                log.info("stream %s: monitor (reference %s): %s", self.name, rows is not None, reason)
        log.warning("stream %s: version %s is not monitored: %s", self.name, version, reason)
        return None

    def _absorb(self, scored: Scored) -> None:
        """Feed the scored observations to a model that updates in place (no refit)."""
        if not self._model.supports_update:
            return
        try:
            self._model.update(pd.concat([item.message.to_frame() for item, _ in scored], ignore_index=True))
        except (HubError, ValueError) as exc:  # the batch is already published and acked; keep streaming
            log.warning("stream %s: could not update the model with this batch: %s", self.name, redact(str(exc)))

    def _after_batch(self, scored: Scored) -> None:
        """Feed the batch to the drift monitor; publish and record its events, log its windows, and submit the
        retrain job it asks for (drift, a forecast metric, or ``every_n_rows``) with its recent unflagged rows."""
        if self._monitor is None:
            return
        frame, predictions = self._together_input, self._together
        if frame is None or predictions is None or len(predictions) != sum(len(p) for _, p in scored):
            frame = pd.concat([item.message.to_frame() for item, _ in scored], ignore_index=True)
            predictions = pd.concat([p for _, p in scored], ignore_index=True)
        update = self._monitor.observe(frame, predictions)
        job_id = None
        if update.retrain_rows is not None:
            job_id = self.models.submit_retrain(self.name, update.retrain_rows)
            self.stats.retrain_jobs.append(job_id)
            log.info(
                "stream %s: retrain (%s) submitted as job %s on %d recent rows",
                self.name,
                update.retrain_reason,
                job_id,
                len(update.retrain_rows),
            )
        self._report(update, job_id)

    def _report(self, update: MonitorUpdate, job_id: str | None) -> None:
        """Events to ``<name>.events`` and the monitoring run; window metrics to the run at step ``end_row``.
        Monitoring never stops scoring: a failure here is logged."""
        events = [_stamp(event, self._model_version, job_id) for event in update.events]
        if job_id is not None and not any(event["action"] == "retrain" for event in events):
            events.append(_stamp(_retrain_event(self.name, update), self._model_version, job_id))
        try:
            if events:
                messages = [
                    OutgoingMessage(
                        body=json.dumps(event, allow_nan=False).encode(),
                        message_id=uuid.uuid4().hex,
                        headers={"experiment": self.name, "kind": event["kind"]},
                        content_type="application/json",
                    )
                    for event in events
                ]
                self.stream.publish_topic(events_topic(self.name), messages)
            for event in events:
                log.warning("stream %s: %s event, action %s", self.name, event["kind"], event["action"])
            if self._monitor_run is not None:
                for window in update.windows:
                    metrics = {f"window.{k}": v for k, v in window.to_metrics().items()}
                    metrics["window.end_row"] = float(window.end_row)
                    self.models.log_monitoring(self._monitor_run, metrics, window.end_row)
                if events:
                    self.models.log_events(self._monitor_run, events)
        except HubError as exc:
            log.warning("stream %s: monitoring events not stored: %s", self.name, redact(str(exc)))

    def _log_progress(self, force: bool = False) -> None:
        """Every ``log_every_s``: one INFO line, and the same figures as metrics of the monitoring run."""
        now = time.monotonic()
        if not force and now - self._last_log < self.log_every_s:
            return
        self._last_log = now
        try:
            lag = self.stream.queue_depth(input_queue(self.name))
        except HubError:
            lag = -1
        records, alarms, dead, started = self._interval
        rows = self.stats.records - records
        metrics = {
            "rows_scored": float(rows),
            "rows_per_s": rows / max(now - started, 1e-9),
            "alarm_rate": (self.stats.alarms - alarms) / rows if rows else 0.0,
            "dead_lettered": float(self.stats.dead_lettered - dead),
            "consumer_lag": float(lag),
            "model_version": float(self._model_version or 0),
            MONITOR_UPDATED: time.time() * 1000.0,  # when this interval ended: a stale scorer shows as stopped
        }
        self._interval = (self.stats.records, self.stats.alarms, self.stats.dead_lettered, now)
        log.info(
            "stream %s: %d rows (%.0f/s), alarm rate %.3f, %d dead-lettered, %d message(s) waiting, version %s",
            self.name,
            rows,
            metrics["rows_per_s"],
            metrics["alarm_rate"],
            metrics["dead_lettered"],
            lag,
            self._model_version,
        )
        if self._monitor_run is not None:
            try:
                self.models.log_monitoring(self._monitor_run, metrics, self._step)
            except HubError as exc:
                log.warning("stream %s: monitoring metrics not stored: %s", self.name, redact(str(exc)))
        self._step += 1


def _stamp(event: dict[str, Any], version: int | None, job_id: str | None) -> dict[str, Any]:
    """The event as published: plus the served version, the time (epoch ms), its headline ``value`` and
    ``threshold`` (the feature furthest past its threshold), the retrain job; JSON-safe (no NaN or inf)."""
    values, thresholds = event.get("values", {}), event.get("thresholds", {})
    ratios = {k: values[k] / thresholds[k] for k in values if thresholds.get(k)}
    top = max(ratios, key=ratios.__getitem__, default=None)
    if top is not None:
        value, threshold = values[top], thresholds[top]
    else:
        value, threshold = event.get("alarm_rate"), event.get("alarm_rate_limit")
    stamped = {**event, "version": version, "time": int(time.time() * 1000), "value": value, "threshold": threshold}
    if event["action"] == "retrain" and job_id is not None:
        stamped["job_id"] = job_id
    return json_safe(stamped)


def _retrain_event(name: str, update: MonitorUpdate) -> dict[str, Any]:
    rows = 0 if update.retrain_rows is None else len(update.retrain_rows)
    return {
        "experiment": name,
        "kind": "retrain",
        "features": [],
        "statistic": update.retrain_reason,
        "values": {},
        "thresholds": {},
        "rows": rows,
        "action": "retrain",
    }


def _same_schema(items: list[_Item]) -> bool:
    first = items[0].message.table.schema
    return all(item.message.table.schema.equals(first) for item in items[1:])


def _body_id(body: bytes) -> str:
    """The id of a message that names none: its body's SHA-256, so a redelivery keeps it."""
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def _delivery_key(delivery: Delivery) -> str:
    return delivery.message_id or _body_id(delivery.body)


def _reason(exc: Exception) -> tuple[str, str]:
    """The dead-letter reason and field of ``exc`` (redacted, at most 1000 characters)."""
    if isinstance(exc, DataValidationError):
        return redact(exc.reason)[:1000], exc.field or ""
    return redact(f"{type(exc).__name__}: {exc}")[:1000], ""


def supervise(command: Sequence[str], consumers: int, stop: threading.Event, *, restart_after_s: float = 1.0) -> int:
    """Run ``consumers`` copies of ``command`` (competing scorer processes) until ``stop`` is set.

    A copy that exits on its own is restarted after ``restart_after_s`` (its unacked batch is redelivered to
    the others meanwhile), except on exit code 2 (a configuration or hub error: restarting would not help),
    which stops them all. On ``stop`` every copy gets SIGTERM, finishes its batch and exits. Returns the worst
    exit code.
    """
    children: list[subprocess.Popen] = [subprocess.Popen(list(command)) for _ in range(consumers)]
    log.info("started %d scorer process(es): %s", consumers, ", ".join(str(c.pid) for c in children))
    worst = 0
    try:
        while not stop.wait(0.5):
            for index, child in enumerate(children):
                code = child.poll()
                if code is None:
                    continue
                worst = max(worst, code)
                if code == 2:
                    log.error("scorer %d exited with a configuration error; stopping", child.pid)
                    stop.set()
                    break
                log.warning("scorer %d exited with code %s; restarting it", child.pid, code)
                time.sleep(restart_after_s)
                children[index] = subprocess.Popen(list(command))
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                worst = max(worst, child.wait(timeout=60))
            except subprocess.TimeoutExpired:
                log.error("scorer %d did not stop within 60 s; killing it", child.pid)
                child.kill()
                worst = max(worst, child.wait())
    return worst


def watch_predictions(
    stream: DataStreamPlugin, name: str, stop: threading.Event, *, alarms_only: bool = False
) -> Iterator[pd.DataFrame]:
    """Yield each new prediction message of ``name`` as a frame (only its alarm rows with ``alarms_only``), without
    taking it from ``<name>.predictions``, until ``stop`` is set."""
    from framework.records import decode_records

    watch = stream.watch(prediction_queue(name))
    try:
        while not stop.is_set():
            for delivery in watch.poll(max_messages=100, timeout=0.5):
                try:
                    _, frame = decode_records(delivery.body, delivery.content_type)
                except DataValidationError as exc:  # never ours, but a watcher must not stop on it
                    log.warning("unreadable prediction %s: %s", delivery.message_id, exc)
                    continue
                if alarms_only and "is_anomaly" in frame.columns:
                    frame = frame.loc[frame["is_anomaly"].astype(bool)]
                if not frame.empty:
                    yield frame.assign(input_id=delivery.headers.get("input_id", delivery.message_id))
    finally:
        watch.close()


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set ``stop`` on SIGINT/SIGTERM while inside the block (main thread only); restore handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the current batch, then stopping", signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
