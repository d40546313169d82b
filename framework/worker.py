"""The Celery side of the ``taskqueue`` plugin: the app factory, the job tasks and the worker entry point.

``experimenthub worker --config hub_config.yaml --concurrency 2`` starts a worker that consumes the plugin's queue.
Each worker process builds its own hub from the same config file (path in ``$EXPERIMENTHUB_CONFIG``) once, right
after it forks, and keeps it for every job it runs. That hub holds only the ``mlops`` plugin: jobs need the store,
never the stream or the task queue. Tasks receive JSON keyword arguments only (job id, experiment name, dataset
run id); data travels by reference through the store.

Reliability: tasks are acked late and rejected (so requeued) when the worker process dies, and the train task is
idempotent by job id (``ExperimentHub.run_job`` looks for the job's finished run first), so a killed worker's job
runs again and still makes exactly one finished model version.

>>> app = create_app(CelerySettings("amqp://guest:guest@localhost:5672//", "redis://localhost:6379/0", "hub"))
>>> app.send_task(TRAIN_TASK, kwargs={"job_id": "j1", "experiment": "pump", "dataset_run_id": "..."}, task_id="j1")
"""

from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import worker_process_init

from framework.config import load_config
from framework.errors import ConfigError, HubError, JobFailed, redact
from framework.jobs import RETRAIN_TASK, TRAIN_TASK

if TYPE_CHECKING:
    from framework.ExperimentHub import ExperimentHub

__all__ = [
    "CONFIG_ENV",
    "EVALUATE_TASK",
    "RETRAIN_TASK",
    "TRAIN_TASK",
    "CelerySettings",
    "create_app",
    "run_worker",
    "worker_hub",
]

log = logging.getLogger(__name__)

CONFIG_ENV = "EXPERIMENTHUB_CONFIG"
EVALUATE_TASK = "experimenthub.evaluate"


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


def create_app(settings: CelerySettings) -> Celery:
    """A Celery app with the hub's settings and its three tasks registered (the same for client and worker)."""
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
    for name, function in ((TRAIN_TASK, train), (RETRAIN_TASK, retrain), (EVALUATE_TASK, evaluate)):
        app.task(name=name, bind=True, throws=(JobFailed,))(_as_job(function))
    return app


# -- the worker's hub ---------------------------------------------------------------------------------------------
class _HubHolder:
    """One hub per worker process, built on first use (thread-safe); a failed build is retried by the next job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hub: ExperimentHub | None = None

    def get(self) -> ExperimentHub:
        with self._lock:
            if self._hub is None:
                self._hub = _build_hub()
            return self._hub


_HUB = _HubHolder()


def _build_hub() -> ExperimentHub:
    from framework.ExperimentHub import ExperimentHub

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"the worker needs ${CONFIG_ENV} (the hub_config.yaml path); start it with run_worker()")
    config = load_config(path)
    plugins = config.plugins.model_copy(update={"taskqueue": None, "datastream": None})
    hub = ExperimentHub.from_hub_config(config.model_copy(update={"plugins": plugins}))
    log.info("worker process %s built its hub from %s", os.getpid(), path)
    return hub


def worker_hub() -> ExperimentHub:
    """This worker process's hub (built once from ``$EXPERIMENTHUB_CONFIG``)."""
    return _HUB.get()


def _warm_up(**_: Any) -> None:
    """``worker_process_init``: build the hub in the background so the first job does not pay for imports.

    Celery kills a child that takes more than a few seconds to start, hence a thread, not a blocking call.
    """

    def build() -> None:
        try:
            _HUB.get()
        except Exception as exc:  # the next job retries the build and reports the error as its failure
            log.warning("worker hub not ready yet: %s", redact(f"{type(exc).__name__}: {exc}"))

    threading.Thread(target=build, name="hub-warm-up", daemon=True).start()


# -- tasks --------------------------------------------------------------------------------------------------------
def train(hub: ExperimentHub, job_id: str, experiment: str, dataset_run_id: str) -> dict[str, Any]:
    """Train ``experiment`` on the stored dataset ``dataset_run_id``; idempotent by ``job_id``."""
    hub.get_experiment(experiment)  # a clear ExperimentNotFound before touching the dataset
    return hub.run_job(job_id=job_id, experiment=experiment, dataset_run_id=dataset_run_id)


def retrain(hub: ExperimentHub, job_id: str, experiment: str, dataset_run_id: str | None = None) -> dict[str, Any]:
    """Retrain ``experiment`` on its recent data plus the stored dataset, if any; idempotent by ``job_id``."""
    hub.get_experiment(experiment)
    return hub.run_job(job_id=job_id, experiment=experiment, dataset_run_id=dataset_run_id, kind="retrain")


def evaluate(hub: ExperimentHub, experiment: str, dataset_run_id: str, version: int | None = None) -> dict[str, Any]:
    """Metrics of the served model (or ``version``) on the labelled stored dataset ``dataset_run_id``."""
    hub.get_experiment(experiment)
    return hub.evaluate(experiment, hub.store.load_dataset(dataset_run_id), version=version)


def _as_job(function: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Wrap a task body: give it the worker's hub, make the result plain JSON, turn any error into ``JobFailed``."""

    def job(task: Any, **kwargs: Any) -> dict[str, Any]:
        job_id = task.request.id
        try:
            return _jsonable(function(worker_hub(), **kwargs))
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


# -- entry point --------------------------------------------------------------------------------------------------
def run_worker(config_path: str | Path, concurrency: int = 2, loglevel: str = "info") -> None:
    """Start a Celery worker for the config's ``taskqueue`` plugin; blocks until the worker stops.

    Raises ``ConfigError`` when the config has no enabled Celery taskqueue plugin.
    """
    from framework.plugins.celery_plugin import CeleryPlugin
    from framework.plugins.registry import build_plugin

    path = Path(config_path).expanduser().resolve()
    config = load_config(path)
    entry = config.plugins.taskqueue
    if entry is None or not entry.enabled:
        raise ConfigError("the worker needs an enabled taskqueue plugin", source=str(path), field="plugins.taskqueue")
    plugin = build_plugin("taskqueue", entry.type, entry.config)
    if not isinstance(plugin, CeleryPlugin):
        raise ConfigError(
            f"the worker runs the celery taskqueue plugin, not {type(plugin).__name__}",
            source=str(path),
            field="plugins.taskqueue.type",
        )
    os.environ[CONFIG_ENV] = str(path)
    worker_process_init.connect(_warm_up, weak=False, dispatch_uid="experimenthub.worker.warm_up")
    app = create_app(plugin.settings)
    log.info("starting worker: queue %s, broker %s", plugin.settings.queue, redact(plugin.settings.broker_url))
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel.upper()}",
            f"--queues={plugin.settings.queue}",
            f"--hostname=experimenthub-{os.getpid()}@%h",
            "--pool=prefork",
        ]
    )
