"""Jobs: running a train/retrain job, its status, cancel and history; and the in-process executor.

A job runs on the ``taskqueue`` plugin's workers when one is enabled, else on ``LocalExecutor`` (the
``TaskQueuePlugin`` interface without a broker): a small thread pool, so callers never block. The durable record of
a job is its training run in the MLOps store, tagged with the job id: that makes a replayed job idempotent, and
lets any process read the state of a job that ran elsewhere.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import ExperimentNotFound, JobFailed, redact
from framework.plugins.taskqueue import JobState

if TYPE_CHECKING:  # store and training import pandas: loaded when a job runs, not with the hub
    import pandas as pd

    from framework.Experiment import Experiment
    from framework.store import ExperimentStore

__all__ = [
    "EVALUATE_TASK",
    "RETRAIN_TASK",
    "TRAIN_TASK",
    "JobInfo",
    "LocalExecutor",
    "cancel_job",
    "job_info",
    "jobs_of",
    "run_job",
    "training_history",
]

log = logging.getLogger(__name__)

TRAIN_TASK = "experimenthub.train"
RETRAIN_TASK = "experimenthub.retrain"
EVALUATE_TASK = "experimenthub.evaluate"
_RUN_STATES: dict[str, JobState] = {
    "RUNNING": "running",
    "FINISHED": "succeeded",
    "FAILED": "failed",
    "KILLED": "cancelled",
}


@dataclass(frozen=True)
class JobInfo:
    """A job's state, and its result or error once it ended."""

    job_id: str
    state: JobState
    result: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_job(
    store: ExperimentStore,
    new_experiment: Callable[[str], Experiment],
    job_id: str,
    experiment: str,
    *,
    kind: str = "train",
    dataset_run_id: str | None = None,
    data: pd.DataFrame | None = None,
    incarnation: str | None = None,
) -> dict[str, Any]:
    """Execute a train or retrain job on a worker or in-process, on ``data`` or the stored ``dataset_run_id``.

    Idempotent: a job that already produced a finished version returns that run's result instead of training again.
    A job submitted for an ``incarnation`` of the experiment that was deleted since fails without training.
    """
    from framework.training import result_of_run, retrain_frame, train_version

    done = store.find_job_run(experiment, job_id)
    if done is not None and store.made_a_version(done):
        log.info("job %s already finished as run %s; not training again", job_id, done.run_id)
        return result_of_run(done).to_dict()
    store.check_incarnation(experiment, incarnation, "run this job")
    if dataset_run_id:
        data = store.load_dataset(dataset_run_id)
    model = new_experiment(experiment)
    if kind == "retrain":
        data = retrain_frame(store, experiment, model, data)
    elif data is None:
        raise JobFailed("a training job needs a dataset", job_id=job_id)
    return train_version(store, experiment, model, data, job_id=job_id, kind=kind, incarnation=incarnation).to_dict()


def job_info(backend: Any, store: ExperimentStore | None, job_id: str) -> JobInfo:
    """State of a job with its result or error; a job the backend does not know (it ran in another process) is
    read from its training run in the store."""
    from framework.training import result_of_run

    try:
        state = backend.get_status(job_id)
    except ExperimentNotFound:
        run = store.find_job(job_id) if store is not None else None
        if run is None:
            raise
        state = _RUN_STATES.get(run.status, "running")
        result = result_of_run(run).to_dict() if store.made_a_version(run) else None
        return JobInfo(job_id, state, result=result, error=store.run_summary(run)["error"])
    if state == "succeeded":
        return JobInfo(job_id, state, result=backend.get_result(job_id, timeout=10))
    if state == "failed":
        try:
            backend.get_result(job_id, timeout=10)
        except JobFailed as exc:
            return JobInfo(job_id, state, error=str(exc))
    return JobInfo(job_id, state)


def cancel_job(backend: Any, store: ExperimentStore | None, job_id: str) -> bool:
    """Cancel a queued or running job; a training run it had started ends as KILLED (not left RUNNING)."""
    accepted = backend.cancel(job_id)
    if accepted and store is not None:
        run = store.find_job(job_id)
        if run is not None and run.status == "RUNNING":
            store.end_run(run.run_id, "KILLED")
    return accepted


def jobs_of(backend: Any, store: ExperimentStore, name: str) -> list[str]:
    """Ids of the queued and running jobs of experiment ``name``: those the backend knows in this process, and
    those whose training run is RUNNING in the store (from any process)."""
    known = backend.jobs_of(name) if isinstance(backend, LocalExecutor) else []
    running = [store.run_summary(run)["job_id"] for run in store.training_runs(name, 100) if run.status == "RUNNING"]
    return list(dict.fromkeys([*known, *(job_id for job_id in running if job_id)]))


def training_history(store: ExperimentStore, names: list[str], limit: int = 20) -> list[dict[str, Any]]:
    """Recent trainings (jobs included) of ``names``, newest first: one plain dict per run."""
    rows = [store.run_summary(run) for name in names for run in store.training_runs(name, limit)]
    return sorted(rows, key=lambda row: row["started"] or 0, reverse=True)[:limit]


class LocalExecutor:
    """Runs named tasks in-process on ``max_workers`` threads, behind the TaskQueuePlugin methods.

    It remembers at most ``max_finished`` ended jobs (the oldest are forgotten first); a forgotten job's state is
    still read from its training run in the store (``job_info``)."""

    def __init__(self, tasks: Mapping[str, Callable[..., Any]], max_workers: int = 2, max_finished: int = 1000) -> None:
        self._tasks = dict(tasks)
        self._max_finished = max_finished
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="job")
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._running: set[str] = set()
        self._experiments: dict[str, str] = {}  # job id -> experiment name
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        """Cancel queued jobs and wait for running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit_task(self, task_name: str, kwargs: Mapping[str, Any], task_id: str | None = None) -> str:
        if task_name not in self._tasks:
            raise JobFailed(f"unknown task {task_name!r}; known: {', '.join(self._tasks)}")
        task_id = task_id or uuid.uuid4().hex
        with self._lock:
            if task_id not in self._futures:
                self._futures[task_id] = self._pool.submit(self._run, task_id, self._tasks[task_name], dict(kwargs))
                self._experiments[task_id] = str(kwargs.get("experiment", ""))
                self._forget_oldest_finished()
        return task_id

    def _forget_oldest_finished(self) -> None:
        finished = [job_id for job_id, future in self._futures.items() if future.done()]
        for job_id in finished[: max(0, len(finished) - self._max_finished)]:
            del self._futures[job_id]
            self._experiments.pop(job_id, None)

    def jobs_of(self, experiment: str) -> list[str]:
        """Ids of this executor's queued and running jobs of ``experiment``."""
        with self._lock:
            return [
                job_id
                for job_id, name in self._experiments.items()
                if name == experiment and not self._futures[job_id].done()
            ]

    def _run(self, task_id: str, task: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            self._running.add(task_id)
        try:
            return task(**kwargs)
        finally:
            with self._lock:
                self._running.discard(task_id)

    def _future(self, task_id: str) -> concurrent.futures.Future:
        with self._lock:
            future = self._futures.get(task_id)
        if future is None:
            raise ExperimentNotFound(f"no job {task_id!r}")
        return future

    def get_status(self, task_id: str) -> JobState:
        future = self._future(task_id)
        if future.cancelled():
            return "cancelled"
        if not future.done():
            return "running" if task_id in self._running else "queued"
        return "failed" if future.exception() is not None else "succeeded"

    def get_result(self, task_id: str, timeout: float | None = None) -> Any:
        future = self._future(task_id)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.CancelledError:
            raise JobFailed("job was cancelled", job_id=task_id) from None
        except concurrent.futures.TimeoutError:
            raise
        except Exception as exc:
            raise JobFailed(redact(f"{type(exc).__name__}: {exc}"), job_id=task_id) from exc

    def cancel(self, task_id: str) -> bool:
        return self._future(task_id).cancel()
