"""The stream scorer: ``<name>.input`` -> predict in micro-batches -> ``<name>.predictions``, losing nothing.

Per micro-batch (N messages or T ms, whichever comes first):

1. decode every message (``records.decode_records``); a bad one goes to ``<name>.dead-letter`` with the reason
   in the ``x-error-reason`` header (and the field in ``x-error-field``);
2. predict once for all good records (vectorised); if the model refuses the batch, score message by message to
   isolate the bad ones, which go to the dead-letter queue;
3. publish one prediction message per input message (``input_id`` names it, ``timestamp`` is the scoring time),
   and wait for the broker's confirms;
4. only then ack the inputs. A failure before that rejects them back onto the queue (redelivered later).

A crash at any point therefore re-delivers the batch: predictions are at-least-once, and the prediction's
``message_id`` equals the input's so consumers can de-duplicate. Several scorers on one queue compete.
"""

from __future__ import annotations

import copy
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.errors import DataValidationError, HubError, redact
from framework.plugins.datastream import DEAD_LETTER_SUFFIX, Delivery, OutgoingMessage
from framework.records import MAX_MESSAGE_BYTES, decode_message, encode_records, uniform_keys

if TYPE_CHECKING:
    from framework.ExperimentHub import ExperimentHub

__all__ = ["StreamScorer", "StreamStats", "input_queue", "prediction_queue", "stop_on_signals"]

log = logging.getLogger(__name__)

REASON_HEADER = "x-error-reason"
FIELD_HEADER = "x-error-field"


def input_queue(name: str) -> str:
    return f"{name}.input"


def prediction_queue(name: str) -> str:
    return f"{name}.predictions"


@dataclass
class StreamStats:
    """Counters of one scorer run."""

    messages: int = 0
    records: int = 0
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
class _Decoded:
    delivery: Delivery
    message_id: str
    records: list
    keys: frozenset[str] | None = None  # shared by all its records, else None

    @cached_property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self.records)


class StreamScorer:
    """Score ``<name>.input`` with the experiment's champion until ``stop`` is set.

    >>> stop = threading.Event()
    >>> stats = StreamScorer(hub, "pump-7").run(stop)     # from another thread: stop.set()
    """

    def __init__(
        self,
        hub: ExperimentHub,
        name: str,
        *,
        batch_size: int = 50,
        batch_timeout_ms: int = 200,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        model_refresh_s: float = 30.0,
        log_every_s: float = 10.0,
    ) -> None:
        self.hub, self.name = hub, name
        self.batch_size, self.batch_timeout_ms = batch_size, batch_timeout_ms
        self.max_message_bytes, self.model_refresh_s, self.log_every_s = max_message_bytes, model_refresh_s, log_every_s
        self.stream = hub.get_plugin("datastream")
        if self.stream is None:
            raise HubError("streaming needs a datastream plugin; enable one in the config")
        self.stats = StreamStats()
        self._model: Any = None
        self._model_version: int | None = None
        self._context: pd.DataFrame | None = None  # the previous batch's last rows (see _predict_with_context)
        self._model_checked_at = float("-inf")
        self._last_log = time.monotonic()
        self._retrain_rows = 0
        self._recent: list[pd.DataFrame] = []
        self._settled: set[int] = set()  # deliveries of the current batch already acked (dead-lettered)

    def run(self, stop: threading.Event) -> StreamStats:
        """Declare the queues and consume until ``stop`` is set; the batch in hand finishes first."""
        self.hub.get_experiment(self.name)  # fail fast on an unknown experiment
        for queue in (input_queue(self.name), prediction_queue(self.name)):
            self.stream.create_queue(queue)
        self._refresh_model()
        log.info("scoring %s -> %s", input_queue(self.name), prediction_queue(self.name))
        self.stream.consume(
            input_queue(self.name),
            self.handle,
            batch_size=self.batch_size,
            batch_timeout_ms=self.batch_timeout_ms,
            stop=stop,
        )
        self._log_progress(force=True)
        return self.stats

    # -- one micro-batch ------------------------------------------------------------------------------------
    def handle(self, deliveries: list[Delivery]) -> None:
        """Score, publish, then ack one micro-batch. Failures before the publish confirm requeue the batch."""
        self._settled.clear()
        try:
            good = self._decode_all(deliveries)
            if good:
                self._refresh_model()
                scored = self._score(good)
                self._publish_predictions(scored)
                self.stream.ack([item.delivery for item, _ in scored])
                self._absorb(scored)
                self._after_batch(scored)
        except Exception as exc:
            log.error(
                "batch of %d message(s) failed and goes back to the queue: %s",
                len(deliveries),
                redact(f"{type(exc).__name__}: {exc}"),
            )
            unsettled = [d for d in deliveries if id(d) not in self._settled]
            try:
                self.stream.reject(unsettled, requeue=True)
            except HubError as reject_error:  # the connection is gone: the broker redelivers them anyway
                log.warning("could not requeue the batch (%s); it will be redelivered", redact(str(reject_error)))
            time.sleep(1.0)  # back off before the redelivery
            return
        self.stats.batches += 1
        self._log_progress()

    def _decode_all(self, deliveries: list[Delivery]) -> list[_Decoded]:
        good, bad = [], []
        for delivery in deliveries:
            try:
                message_id, records = decode_message(delivery.body, self.max_message_bytes)
            except DataValidationError as exc:
                bad.append((delivery, exc))
                continue
            message_id = message_id or delivery.message_id or _fallback_id(delivery)
            good.append(_Decoded(delivery, message_id, records, uniform_keys(records)))
        self.stats.messages += len(deliveries)
        self._dead_letter(bad)
        return good

    def _score(self, items: list[_Decoded]) -> list[tuple[_Decoded, pd.DataFrame]]:
        """Predict all items at once; on a data error, one by one so only the bad messages are dead-lettered."""
        try:
            return self._predict_together(items)
        except DataValidationError:
            pass
        scored, bad = [], []
        for item in items:
            try:
                scored.append((item, self._model.predict(item.frame)))
            except DataValidationError as exc:
                bad.append((item.delivery, exc))
        self._dead_letter(bad)
        return scored

    def _predict_together(self, items: list[_Decoded]) -> list[tuple[_Decoded, pd.DataFrame]]:
        if len(items) == 1:
            frame = items[0].frame
        elif items[0].keys is not None and all(item.keys == items[0].keys for item in items):
            # one frame for the whole batch: every message has the same columns, so none is filled with NaN
            frame = pd.DataFrame.from_records(list(chain.from_iterable(item.records for item in items)))
        else:
            frame = pd.concat([item.frame for item in items], ignore_index=True)
        predictions = self._predict_with_context(frame)
        if len(predictions) != len(frame):  # the model changed the row count: score per message instead
            return [(item, self._model.predict(item.frame)) for item in items]
        bounds = np.cumsum([len(item.records) for item in items])[:-1]
        parts = np.split(np.arange(len(predictions)), bounds)
        return [(item, predictions.iloc[rows]) for item, rows in zip(items, parts, strict=True)]

    def _predict_with_context(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predict ``frame`` after the last ``context_rows`` rows of the previous batch (alarm persistence and
        lagged features then span batches); the context rows' own predictions are dropped."""
        needed = self._model.context_rows
        context = self._context
        if needed and context is not None and list(context.columns) == list(frame.columns):
            predictions = self._model.predict(pd.concat([context, frame], ignore_index=True)).iloc[len(context) :]
        else:
            predictions = self._model.predict(frame)
        self._context = frame.tail(needed).reset_index(drop=True) if needed else None  # only after a good batch
        return predictions

    def _publish_predictions(self, scored: list[tuple[_Decoded, pd.DataFrame]]) -> None:
        messages = [
            OutgoingMessage(
                body=encode_records(
                    predictions, message_id=item.message_id, input_id=item.message_id, experiment=self.name
                ),
                message_id=item.message_id,
                headers={"input_id": item.message_id, "experiment": self.name},
            )
            for item, predictions in scored
        ]
        self.stream.publish(prediction_queue(self.name), messages)
        self.stats.records += sum(len(item.records) for item, _ in scored)
        self.stats.predictions_published += len(messages)

    def _dead_letter(self, bad: list[tuple[Delivery, DataValidationError]]) -> None:
        """Publish each bad message to the dead-letter queue with its reason, then ack it."""
        if not bad:
            return
        messages = [
            OutgoingMessage(
                body=delivery.body,
                message_id=delivery.message_id,
                headers={**delivery.headers, REASON_HEADER: redact(exc.reason)[:1000], FIELD_HEADER: exc.field or ""},
                content_type=delivery.content_type or "application/octet-stream",
            )
            for delivery, exc in bad
        ]
        self.stream.publish(input_queue(self.name) + DEAD_LETTER_SUFFIX, messages)
        self.stream.ack([delivery for delivery, _ in bad])
        for delivery, exc in bad:
            self._settled.add(id(delivery))
            log.warning("message %s -> dead-letter: %s", delivery.message_id, redact(str(exc)))
        self.stats.dead_lettered += len(bad)

    # -- model, retraining, progress ------------------------------------------------------------------------
    def _refresh_model(self) -> None:
        """Every ``model_refresh_s``, switch to the served version if it changed (a new champion).

        A model that updates in place (``supports_update``, e.g. forecasting) is copied first, so the hub's
        cached model is never changed, and keeps absorbing the stream until the served version changes.
        """
        if time.monotonic() - self._model_checked_at < self.model_refresh_s:
            return
        self._model_checked_at = time.monotonic()
        version = self.hub.store.resolve_version(self.name).version
        if version != self._model_version:
            model = self.hub.load(self.name, version=version)
            self._model = copy.deepcopy(model) if model.supports_update else model
            self._model_version = version
            log.info("stream %s: serving version %s", self.name, version)

    def _absorb(self, scored: list[tuple[_Decoded, pd.DataFrame]]) -> None:
        """Feed the scored observations to a model that updates in place (no refit)."""
        if not self._model.supports_update:
            return
        try:
            self._model.update(pd.concat([item.frame for item, _ in scored], ignore_index=True))
        except (HubError, ValueError) as exc:  # the batch is already published and acked; keep streaming
            log.warning("stream %s: could not update the model with this batch: %s", self.name, redact(str(exc)))

    def _after_batch(self, scored: list[tuple[_Decoded, pd.DataFrame]]) -> None:
        """Apply the spec's retrain policy: every N new rows, submit a retrain job with the recent normal rows."""
        policy = self._model.spec.retrain
        if not policy.every_n_rows:
            return
        for item, predictions in scored:
            normal = item.frame
            if "is_anomaly" in predictions.columns and len(predictions) == len(normal):
                normal = normal.loc[~predictions["is_anomaly"].to_numpy(dtype=bool)]
            self._recent.append(normal)
            self._retrain_rows += len(item.records)
        window = policy.window or policy.every_n_rows
        recent = pd.concat(self._recent, ignore_index=True).tail(window)
        self._recent = [recent]
        if self._retrain_rows >= policy.every_n_rows:
            self._retrain_rows = 0
            job_id = self.hub.submit_retrain(self.name, recent)
            self.stats.retrain_jobs.append(job_id)
            log.info(
                "retrain policy: %d new rows; submitted job %s on %d recent rows",
                policy.every_n_rows,
                job_id,
                len(recent),
            )

    def _log_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_log < self.log_every_s:
            return
        self._last_log = now
        try:
            lag = self.stream.queue_depth(input_queue(self.name))
        except HubError:
            lag = -1
        log.info(
            "stream %s: %d records (%.0f/s), %d dead-lettered, %d message(s) waiting",
            self.name,
            self.stats.records,
            self.stats.rate(),
            self.stats.dead_lettered,
            lag,
        )


def _fallback_id(delivery: Delivery) -> str:
    return f"tag-{delivery.tag}"


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
