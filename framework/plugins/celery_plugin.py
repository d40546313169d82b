"""``CeleryPlugin``: training jobs on Celery workers (RabbitMQ broker, Redis result backend).

>>> plugin = CeleryPlugin("amqp://guest:guest@localhost:5672//", "redis://localhost:6379/0", "experiment_hub")
>>> plugin.initialize()                              # PluginUnavailable within seconds if the broker is down
>>> job_id = plugin.submit_task("experimenthub.train", {"job_id": "j1", ...}, task_id="j1")
>>> plugin.get_status(job_id)                        # queued | running | succeeded | failed | cancelled
>>> plugin.get_result(job_id, timeout=600)           # the result dict, or JobFailed with the worker's message

Workers run ``experimenthub worker --config hub_config.yaml`` (``framework.worker`` hands the job functions to
``CeleryPlugin.run_worker``); both sides build their Celery app with ``create_app`` from the same
``CelerySettings``, so they agree on queue, serializer and limits.

Job states come from the result backend. Celery reports an unknown id as PENDING, so ``submit_task`` writes a
PENDING record first: an id without a record is unknown (``ExperimentNotFound``), as with the in-process executor.
Credentials in the URLs are masked in health details, logs and errors.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from celery import Celery, states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.signals import worker_process_init

from framework.errors import (
    ExperimentNotFound,
    HubError,
    JobFailed,
    PluginError,
    PluginUnavailable,
    redact,
)
from framework.plugins.settings import CeleryConfig, TLSConfig, validated_by
from framework.plugins.taskqueue import JobState
from framework.plugins.tls import tls_failure

__all__ = ["CeleryPlugin", "CelerySettings", "create_app"]

log = logging.getLogger(__name__)

_STATES: dict[str, JobState] = {
    states.PENDING: "queued",
    states.RECEIVED: "queued",
    states.STARTED: "running",
    states.RETRY: "running",
    states.SUCCESS: "succeeded",
    states.FAILURE: "failed",
    states.REVOKED: "cancelled",
}


@dataclass(frozen=True)
class CelerySettings:
    """Everything the plugin (client) and the worker must agree on. Built by ``CeleryPlugin``."""

    broker_url: str
    backend_url: str
    app_name: str
    queue: str = "experimenthub"
    task_time_limit: float = 3600.0
    task_soft_time_limit: float | None = None
    result_expires: float = 7 * 24 * 3600.0
    connect_timeout: float = 4.0
    broker_ssl: dict[str, Any] | None = None  # py-amqp ssl options (``TLSConfig.amqp_options``), None for plain AMQP


def create_app(settings: CelerySettings, tasks: Mapping[str, Callable[..., Any]] | None = None) -> Celery:
    """A Celery app with the hub's settings (the same for client and worker) and, on a worker, its ``tasks``
    registered by name (a client sends tasks by name and needs no bodies)."""
    app = Celery(settings.app_name, broker=settings.broker_url, backend=settings.backend_url, set_as_current=False)
    soft_limit = settings.task_soft_time_limit
    if soft_limit is None:  # leave the task time to end its MLflow run as FAILED before the hard kill
        soft_limit = settings.task_time_limit * 0.95
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=settings.queue,
        task_default_exchange=settings.queue,
        task_default_routing_key=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=soft_limit,
        result_expires=settings.result_expires,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_redirect_stdouts_level="INFO",
        broker_connection_timeout=settings.connect_timeout,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"confirm_publish": True, "max_retries": 2, "interval_start": 0, "interval_max": 1},
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        redis_socket_connect_timeout=settings.connect_timeout,
        redis_socket_timeout=max(settings.connect_timeout, 10.0),
        redis_retry_on_timeout=False,
        result_backend_transport_options={
            "retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
        },
    )
    if settings.broker_ssl is not None:
        app.conf.broker_use_ssl = settings.broker_ssl
    for name, function in (tasks or {}).items():
        app.task(name=name, bind=True, throws=(JobFailed,))(_as_job(function))
    return app


def _as_job(function: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Wrap a task body: make the result plain JSON, turn any error into ``JobFailed`` (with a redacted log)."""

    def job(task: Any, **kwargs: Any) -> dict[str, Any]:
        job_id = task.request.id
        try:
            return _jsonable(function(**kwargs))
        except HubError as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.info("job %s (%s) failed: %s", job_id, task.name, redact(message))
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.error("job %s (%s) failed:\n%s", job_id, task.name, redact("".join(traceback.format_exception(exc))))
        # ``from None``: Celery stores the formatted traceback, chained causes included, in the result backend.
        raise JobFailed(message, job_id=job_id) from None

    job.__name__ = function.__name__
    job.__doc__ = function.__doc__
    job.__qualname__ = function.__qualname__
    job.__module__ = __name__
    return job


def _jsonable(result: Any) -> Any:
    """The result as plain JSON types (numpy scalars become Python numbers)."""
    return json.loads(json.dumps(result, default=lambda value: value.item() if hasattr(value, "item") else str(value)))


class CeleryPlugin:
    """The ``taskqueue`` plugin on Celery: submit by task name with JSON kwargs, poll, wait, cancel.

    ``queue`` is the queue the workers consume (give each deployment its own). ``task_time_limit`` is the hard
    limit per job in seconds (the soft limit, default 95 % of it, lets the job end its run cleanly).
    ``result_expires`` is how long job states and results stay in the backend. ``connect_timeout`` bounds each
    broker and backend connection attempt; ``health_timeout`` is how long the health check waits for workers.
    ``ssl`` (``{ca_file, cert_file, key_file, verify: true}``) turns on TLS to the broker (``amqps://…:5671``).
    """

    plugin_type = "taskqueue"
    config_model = CeleryConfig

    @validated_by(CeleryConfig)
    def __init__(
        self,
        broker_url: str,
        backend_url: str,
        app_name: str,
        *,
        queue: str = "experimenthub",
        task_time_limit: float = 3600.0,
        task_soft_time_limit: float | None = None,
        result_expires: float = 7 * 24 * 3600.0,
        connect_timeout: float = 4.0,
        health_timeout: float = 1.0,
        ssl: TLSConfig | None = None,
    ) -> None:
        broker_host = urlsplit(broker_url).hostname or "localhost"
        self.settings = CelerySettings(
            broker_url=broker_url,
            backend_url=backend_url,
            app_name=app_name,
            queue=queue,
            task_time_limit=float(task_time_limit),
            task_soft_time_limit=task_soft_time_limit,
            result_expires=float(result_expires),
            connect_timeout=float(connect_timeout),
            broker_ssl=ssl.amqp_options(broker_host) if ssl is not None else None,
        )
        self.health_timeout = float(health_timeout)
        self._app: Celery | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------
    @property
    def app(self) -> Celery:
        """The Celery app (after ``initialize``), for advanced use such as ``app.control.inspect()``."""
        if self._app is None:
            raise PluginError("CeleryPlugin is not initialized; call initialize() first", plugin_type="taskqueue")
        return self._app

    def initialize(self) -> None:
        """Build the app and check that the broker and the result backend answer. Idempotent."""
        if self._app is not None:
            return
        app = create_app(self.settings)
        try:
            self._check_broker(app)
            self._check_backend(app)
        except Exception:
            app.close()
            raise
        self._app = app
        log.info("celery taskqueue ready: broker %s, queue %s", self._where("broker"), self.settings.queue)

    def shutdown(self) -> None:
        """Close the app's connection pools. Idempotent."""
        app, self._app = self._app, None
        if app is not None:
            app.close()

    def _where(self, which: str) -> str:
        return redact(self.settings.broker_url if which == "broker" else self.settings.backend_url)

    def _check_broker(self, app: Celery) -> None:
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=self.settings.connect_timeout)
        except Exception as exc:
            if (problem := tls_failure(exc)) is not None:
                raise PluginError(
                    f"TLS handshake with the Celery broker at {self._where('broker')} failed: {problem}; check "
                    "ssl.ca_file (the CA that signed the broker's certificate), ssl.cert_file/key_file and the "
                    "host name",
                    plugin_type="taskqueue",
                ) from exc
            raise _unavailable(f"cannot reach the Celery broker at {self._where('broker')}", exc) from exc

    def _check_backend(self, app: Celery) -> None:
        try:
            app.backend.client.ping()
        except Exception as exc:
            raise _unavailable(f"cannot reach the Celery result backend at {self._where('backend')}", exc) from exc

    def health_check(self) -> tuple[bool, dict]:
        """Broker connection, result backend ping and live workers on this queue. Never raises."""
        details: dict[str, Any] = {
            "broker": self._where("broker"),
            "backend": self._where("backend"),
            "queue": self.settings.queue,
        }
        if self._app is None:
            return False, {**details, "status": "not initialized", "reason": "plugin is not initialized"}
        problems = []
        for name, check in (("broker", self._check_broker), ("backend", self._check_backend)):
            try:
                check(self._app)
                details[f"{name}_ok"] = True
            except Exception as exc:
                details[f"{name}_ok"] = False
                problems.append(redact(str(exc)))
        workers: list[str] = []
        if details["broker_ok"]:
            try:
                workers = self.workers()
            except Exception as exc:
                problems.append(redact(f"cannot list workers: {type(exc).__name__}: {exc}"))
        details["workers"] = len(workers)
        details["worker_names"] = workers
        if details["broker_ok"] and not workers and not problems:
            problems.append(f"no live worker consumes queue {self.settings.queue!r}; start `experimenthub worker`")
        healthy = not problems
        details["status"] = "ok" if healthy else "degraded"
        if problems:
            details["reason"] = "; ".join(problems)
        return healthy, details

    def workers(self) -> list[str]:
        """Names of the live workers consuming this plugin's queue (waits ``health_timeout`` for replies)."""
        replies = self.app.control.inspect(timeout=self.health_timeout).active_queues() or {}
        return sorted(
            name for name, queues in replies.items() if any(q.get("name") == self.settings.queue for q in queues)
        )

    # -- jobs -------------------------------------------------------------------------------------------------
    def submit_task(self, task_name: str, kwargs: Mapping[str, Any], task_id: str | None = None) -> str:
        """Queue ``task_name(**kwargs)`` (JSON only) under ``task_id``; a known id is not queued twice."""
        app = self.app
        try:
            json.dumps(dict(kwargs))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"job kwargs must be JSON (ids and names, never objects): {exc}") from exc
        task_id = task_id or uuid.uuid4().hex
        if self._meta_exists(task_id):
            log.info("job %s is already known; not queueing it again", task_id)
            return task_id
        try:
            app.backend.store_result(task_id, None, states.PENDING)
            app.send_task(task_name, kwargs=dict(kwargs), task_id=task_id, queue=self.settings.queue)
        except Exception as exc:
            self._forget(task_id)
            raise _unavailable(f"cannot queue job {task_id} on {self._where('broker')}", exc) from exc
        return task_id

    def _forget(self, task_id: str) -> None:
        try:
            self.app.backend.forget(task_id)
        except Exception as exc:
            log.warning("could not remove the record of unsent job %s: %s", task_id, redact(str(exc)))

    def _meta_exists(self, task_id: str) -> bool:
        backend = self.app.backend
        try:
            return backend.get(backend.get_key_for_task(task_id)) is not None
        except Exception as exc:
            raise _unavailable(f"cannot read job {task_id} from {self._where('backend')}", exc) from exc

    def _state(self, task_id: str) -> str:
        try:
            state = self.app.AsyncResult(task_id).state
        except Exception as exc:
            raise _unavailable(f"cannot read job {task_id} from {self._where('backend')}", exc) from exc
        if state == states.PENDING and not self._meta_exists(task_id):
            raise ExperimentNotFound(f"no job {task_id!r} (unknown, or its record expired)")
        return state

    def get_status(self, task_id: str) -> JobState:
        """``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``; ``ExperimentNotFound`` if unknown."""
        return _STATES.get(self._state(task_id), "running")

    def get_result(self, task_id: str, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` s (None: forever) and return the result.

        Raises ``JobFailed`` (the worker's message) if the job failed or was cancelled, ``TimeoutError`` on timeout.
        """
        self._state(task_id)
        result = self.app.AsyncResult(task_id)
        try:
            value = result.get(timeout=timeout, propagate=False, disable_sync_subtasks=False)
        except CeleryTimeoutError:
            raise TimeoutError(f"job {task_id} did not finish within {timeout:g} s") from None
        except Exception as exc:
            raise _unavailable(f"cannot wait for job {task_id}", exc) from exc
        state = result.state
        if state == states.SUCCESS:
            return value
        if state == states.REVOKED:
            raise JobFailed("job was cancelled", job_id=task_id)
        message = str(value) if isinstance(value, BaseException) else repr(value)
        raise JobFailed(message or f"job ended in state {state}", job_id=task_id)

    def cancel(self, task_id: str) -> bool:
        """Revoke the job: a queued job never runs, a running one is terminated. False if it already ended,
        or if no live worker acknowledged the revoke (a queued job would then still run when a worker starts)."""
        state = self._state(task_id)
        if state in states.READY_STATES:
            return state == states.REVOKED
        try:
            replies = self.app.control.revoke(
                task_id, terminate=True, signal="SIGTERM", reply=True, timeout=self.health_timeout
            )
        except Exception as exc:
            raise _unavailable(f"cannot cancel job {task_id}", exc) from exc
        if not replies:
            log.warning("no live worker acknowledged the cancellation of job %s", task_id)
            return False
        if state in (states.PENDING, states.RECEIVED):  # the worker marks it when the message arrives; say so now
            self.app.backend.mark_as_revoked(task_id, "cancelled")
        return True

    # -- worker -----------------------------------------------------------------------------------------------
    def run_worker(
        self,
        tasks: Mapping[str, Callable[..., Any]],
        *,
        concurrency: int = 2,
        loglevel: str = "info",
        on_process_start: Callable[[], None] | None = None,
    ) -> None:
        """Run a prefork worker on this plugin's queue with ``tasks`` (name -> function of JSON kwargs returning
        a JSON-able result); blocks until it stops. ``on_process_start`` runs in each child process after fork."""
        if on_process_start is not None:
            worker_process_init.connect(
                lambda **_: on_process_start(), weak=False, dispatch_uid="experimenthub.worker.process_start"
            )
        app = create_app(self.settings, tasks)
        log.info("starting worker: queue %s, broker %s", self.settings.queue, self._where("broker"))
        app.worker_main(
            [
                "worker",
                f"--concurrency={concurrency}",
                f"--loglevel={loglevel.upper()}",
                f"--queues={self.settings.queue}",
                f"--hostname=experimenthub-{os.getpid()}@%h",
                "--pool=prefork",
            ]
        )


def _unavailable(what: str, exc: Exception) -> PluginUnavailable:
    """``PluginUnavailable("<what>: <ExcType>: <exc>")`` for a failed broker or backend call."""
    return PluginUnavailable(f"{what}: {type(exc).__name__}: {exc}", plugin_type="taskqueue")
