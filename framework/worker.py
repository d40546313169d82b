"""The worker entry point: ``experimenthub worker --config hub_config.yaml --concurrency 2``.

It builds the config's ``taskqueue`` plugin and hands it the job functions; the plugin (``CeleryPlugin``) owns
everything Celery. Each worker process builds its own hub from the same config file (path in
``$EXPERIMENTHUB_CONFIG``) once, right after it forks, and keeps it for every job it runs. That hub holds only the
``mlops`` plugin: jobs need the store, never the stream or the task queue. Jobs receive JSON keyword arguments
only (job id, experiment name, dataset run id); data travels by reference through the store.

Reliability: the plugin acks tasks late and requeues them when the worker process dies, and the train job is
idempotent by job id (``training.run_job`` looks for the job's finished run first), so a killed worker's job runs
again and still makes exactly one finished model version.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.config import configure_logging, load_config
from framework.errors import ConfigError, redact
from framework.jobs import EVALUATE_TASK, RETRAIN_TASK, TRAIN_TASK

if TYPE_CHECKING:
    from framework.ExperimentHub import ExperimentHub

__all__ = ["CONFIG_ENV", "job_functions", "run_worker", "worker_hub"]

log = logging.getLogger(__name__)

CONFIG_ENV = "EXPERIMENTHUB_CONFIG"


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


def _warm_up() -> None:
    """After fork: build the hub in the background so the first job does not pay for imports.

    Celery kills a child that takes more than a few seconds to start, hence a thread, not a blocking call.
    """

    def build() -> None:
        try:
            _HUB.get()
        except Exception as exc:  # the next job retries the build and reports the error as its failure
            log.warning("worker hub not ready yet: %s", redact(f"{type(exc).__name__}: {exc}"))

    threading.Thread(target=build, name="hub-warm-up", daemon=True).start()


# -- jobs ---------------------------------------------------------------------------------------------------------
def train(job_id: str, experiment: str, dataset_run_id: str, incarnation: str | None = None) -> dict[str, Any]:
    """Train ``experiment`` on the stored dataset ``dataset_run_id``; idempotent by ``job_id``.

    ``incarnation`` is the experiment's incarnation when the job was submitted: a job that outlived a delete fails."""
    hub = worker_hub()
    hub.get_experiment(experiment)  # a clear ExperimentNotFound before touching the dataset
    return hub.run_job(job_id=job_id, experiment=experiment, dataset_run_id=dataset_run_id, incarnation=incarnation)


def retrain(
    job_id: str, experiment: str, dataset_run_id: str | None = None, incarnation: str | None = None
) -> dict[str, Any]:
    """Retrain ``experiment`` on its recent data plus the stored dataset, if any; idempotent by ``job_id``."""
    hub = worker_hub()
    hub.get_experiment(experiment)
    return hub.run_job(
        job_id=job_id, experiment=experiment, dataset_run_id=dataset_run_id, kind="retrain", incarnation=incarnation
    )


def evaluate(experiment: str, dataset_run_id: str, version: int | None = None) -> dict[str, Any]:
    """Metrics of the served model (or ``version``) on the labelled stored dataset ``dataset_run_id``."""
    hub = worker_hub()
    hub.get_experiment(experiment)
    return hub.evaluate(experiment, hub.store.load_dataset(dataset_run_id), version=version)


def job_functions() -> dict[str, Callable[..., dict[str, Any]]]:
    """Task name -> job function: what a worker runs."""
    return {TRAIN_TASK: train, RETRAIN_TASK: retrain, EVALUATE_TASK: evaluate}


# -- entry point --------------------------------------------------------------------------------------------------
def run_worker(config_path: str | Path, concurrency: int = 2, loglevel: str = "info") -> None:
    """Start a worker for the config's ``taskqueue`` plugin; blocks until the worker stops.

    Raises ``ConfigError`` when the config has no enabled taskqueue plugin that can run workers.
    """
    from framework.plugins.registry import build_plugin, check_config

    path = Path(config_path).expanduser().resolve()
    config = load_config(path)
    configure_logging(config)
    check_config(config)
    entry = config.plugins.taskqueue
    if entry is None or not entry.enabled:
        raise ConfigError("the worker needs an enabled taskqueue plugin", source=str(path), field="plugins.taskqueue")
    plugin = build_plugin("taskqueue", entry.type, entry.config)
    if not callable(getattr(plugin, "run_worker", None)):
        raise ConfigError(
            f"the {type(plugin).__name__} taskqueue plugin cannot run workers (it has no run_worker())",
            source=str(path),
            field="plugins.taskqueue.type",
        )
    os.environ[CONFIG_ENV] = str(path)
    plugin.run_worker(job_functions(), concurrency=concurrency, loglevel=loglevel, on_process_start=_warm_up)
