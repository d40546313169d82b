"""``MLOpsPlugin``: runs, params, metrics, artifacts, figures and model versions (the system of record)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from framework.errors import redact
from framework.plugins.base import Plugin

__all__ = ["MLOpsPlugin", "ModelVersion", "RunRecord", "RunStatus"]

log = logging.getLogger(__name__)

RunStatus = str  # "RUNNING" | "FINISHED" | "FAILED" | "KILLED"


@dataclass(frozen=True)
class RunRecord:
    """A tracked run, as read back from the store."""

    run_id: str
    experiment: str
    status: RunStatus
    start_time: int | None = None
    end_time: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of an experiment's model."""

    name: str
    version: int
    run_id: str | None
    aliases: tuple[str, ...] = ()
    created: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class MLOpsPlugin(Plugin, Protocol):
    """Tracking and model registry. Every call names its run explicitly: there is no "active run".

    Experiments are addressed by name; runs by id; models by the experiment's name plus a version or alias.
    """

    plugin_type: str = "mlops"

    # experiments
    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        """Create the experiment, or return the id of the existing one (idempotent)."""
        raise NotImplementedError

    def get_experiment(self, name: str) -> dict[str, Any] | None:
        """``{"id", "name", "tags"}`` of an active experiment, or None."""
        raise NotImplementedError

    def list_experiments(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Active experiments, optionally only those that carry the tag key ``tag``."""
        raise NotImplementedError

    def set_experiment_tags(self, name: str, tags: Mapping[str, str]) -> None:
        raise NotImplementedError

    def delete_experiment(self, name: str) -> None:
        """Delete the experiment and its registered model."""
        raise NotImplementedError

    # runs
    def start_run(self, experiment: str, run_name: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Start a run in ``experiment`` (created if needed) and return its id."""
        raise NotImplementedError

    def end_run(self, run_id: str, status: RunStatus = "FINISHED") -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def run(self, experiment: str, run_name: str | None = None, tags: Mapping[str, str] | None = None) -> Iterator[str]:
        """``with plugin.run("exp") as run_id:`` ends FINISHED, or FAILED (and re-raises) if the body raises.

        If marking the run FAILED fails too (the store went away), the body's error is the one raised: it is the
        cause; the failed cleanup is logged.
        """
        run_id = self.start_run(experiment, run_name=run_name, tags=tags)
        try:
            yield run_id
        except BaseException:
            try:
                self.end_run(run_id, "FAILED")
            except Exception as exc:
                log.warning("could not mark run %s FAILED: %s", run_id, redact(f"{type(exc).__name__}: {exc}"))
            raise
        self.end_run(run_id, "FINISHED")

    def delete_run(self, run_id: str) -> None:
        """Delete a run and its artifacts (e.g. a dataset no job will read)."""
        raise NotImplementedError

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params in batches; values are stringified, secrets are masked."""
        raise NotImplementedError

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log metrics in batches (never one call per value)."""
        raise NotImplementedError

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        raise NotImplementedError

    def log_artifact(self, run_id: str, local_path: str | Path, artifact_path: str | None = None) -> None:
        raise NotImplementedError

    def log_figure(self, run_id: str, figure: Any, name: str) -> None:
        """Store a plotly figure as ``figures/<name>.html`` and ``figures/<name>.json``."""
        raise NotImplementedError

    def download_artifact(self, run_id: str, artifact_path: str, dst_dir: str | Path | None = None) -> Path:
        """Fetch an artifact to a local path and return it."""
        raise NotImplementedError

    def get_run(self, run_id: str) -> RunRecord:
        raise NotImplementedError

    def search_runs(
        self, experiment: str, filter_string: str = "", max_results: int = 100, order_by: list[str] | None = None
    ) -> list[RunRecord]:
        raise NotImplementedError

    # models
    def log_model(self, run_id: str, model: Any, name: str = "model") -> str:
        """Log a Python object with ``predict(DataFrame)`` as a model of the run; return its model URI."""
        raise NotImplementedError

    def register_model(
        self, name: str, model_uri: str, run_id: str | None = None, tags: Mapping[str, str] | None = None
    ) -> ModelVersion:
        """Register ``model_uri`` as a new version of the registered model ``name``, with version ``tags``."""
        raise NotImplementedError

    def set_alias(self, name: str, alias: str, version: int) -> None:
        raise NotImplementedError

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        raise NotImplementedError

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, newest first."""
        raise NotImplementedError

    def load_model(self, name: str, version: int | None = None, alias: str | None = None) -> Any:
        """Load the object logged by ``log_model`` for a version or an alias (default: ``champion``)."""
        raise NotImplementedError
