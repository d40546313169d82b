"""``TaskQueuePlugin``: training jobs on workers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from framework.plugins.base import Plugin

__all__ = ["JobState", "TaskQueuePlugin"]

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@runtime_checkable
class TaskQueuePlugin(Plugin, Protocol):
    """Submit named tasks with JSON keyword arguments; poll or wait for their state and result."""

    plugin_type: str = "taskqueue"

    def submit_task(self, task_name: str, kwargs: Mapping[str, Any], task_id: str | None = None) -> str:
        """Queue ``task_name(**kwargs)`` and return the task id (``task_id`` when given, for idempotency)."""
        raise NotImplementedError

    def get_status(self, task_id: str) -> JobState:
        raise NotImplementedError

    def get_result(self, task_id: str, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` seconds and return the result; raise ``JobFailed`` if the task failed."""
        raise NotImplementedError

    def cancel(self, task_id: str) -> bool:
        """Revoke a queued or running task; return True if the request was accepted."""
        raise NotImplementedError
