"""The in-process job executor: the ``TaskQueuePlugin`` interface without a broker (taskqueue disabled).

Jobs run on a small thread pool, so callers never block; states are kept per executor instance. The durable
record of a job is its tagged run in the MLOps store, which makes a replayed job idempotent.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from framework.errors import ExperimentNotFound, JobFailed, redact
from framework.plugins.taskqueue import JobState

__all__ = ["RETRAIN_TASK", "TRAIN_TASK", "JobInfo", "LocalExecutor"]

TRAIN_TASK = "experimenthub.train"
RETRAIN_TASK = "experimenthub.retrain"


@dataclass(frozen=True)
class JobInfo:
    """A job's state, and its result or error once it ended."""

    job_id: str
    state: JobState
    result: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LocalExecutor:
    """Runs named tasks in-process on ``max_workers`` threads, behind the TaskQueuePlugin methods."""

    def __init__(self, tasks: Mapping[str, Callable[..., Any]], max_workers: int = 2) -> None:
        self._tasks = dict(tasks)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="job")
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._running: set[str] = set()
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
        return task_id

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
