"""How the hub keeps its state in the MLOps store (DESIGN.md §3): the only schema the hub writes.

Names, tags, reads and writes; no training logic (that is ``training.py``) and no job logic (``jobs.py``).

- a hub experiment is an MLOps experiment tagged ``experimenthub.type``, ``experimenthub.spec`` (JSON) and
  ``experimenthub.incarnation`` (a fresh id per creation). Only experiments with these tags are the hub's: the hub
  never adopts, changes or deletes any other experiment or registered model;
- each model version is tagged with the incarnation that made it; a version of another incarnation (a job that
  outlived a delete) is never registered, promoted or served under a new experiment of the same name;
- each training is a run tagged ``experimenthub.kind=train`` holding params, metrics, figures, the dataset
  snapshot (``data/train.parquet``) and the model; each model is a version of the registered model named
  after the experiment, and the alias ``champion`` marks the one in service;
- datasets submitted for jobs are runs tagged ``experimenthub.kind=dataset`` holding ``data/dataset.parquet``;
- a job's run carries ``experimenthub.job_id``, which makes jobs idempotent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pyarrow import ArrowException as ArrowError

from framework.errors import (
    ConflictError,
    DataValidationError,
    ExperimentNotFound,
    HubError,
    PluginUnavailable,
    redact,
)
from framework.Experiment import Experiment
from framework.plugins.mlops import MLOpsPlugin, ModelVersion, RunRecord
from framework.processes import process_alive

__all__ = ["CHAMPION", "MONITOR_UPDATED", "ExperimentInfo", "ExperimentStore", "RunOutcome"]

log = logging.getLogger(__name__)

CHAMPION = "champion"
TAG_TYPE = "experimenthub.type"
TAG_SPEC = "experimenthub.spec"
TAG_KIND = "experimenthub.kind"
TAG_JOB = "experimenthub.job_id"
TAG_VERSION = "experimenthub.model_version"
TAG_PROMOTED = "experimenthub.promoted"
TAG_VALIDATION = "experimenthub.validation"
TAG_INCARNATION = "experimenthub.incarnation"
TAG_ERROR = "experimenthub.error"  # why a training run FAILED, so any process can report it
TAG_HOST = "experimenthub.host"  # where a training run's process runs, and its pid: an ended process's RUNNING run
TAG_PID = "experimenthub.pid"  # is abandoned
TAG_RUN_NAME = "mlflow.runName"
TAG_FIGURES = "experimenthub.figures"
TAG_EVENT = "experimenthub.event."  # monitoring-run tag prefix: one JSON event per tag
MAX_TAG_CHARS = 7000  # below MLflow's tag value limit (8000)
MONITOR_UPDATED = "updated_ms"  # monitoring-run metric: when the interval ended (epoch ms)
TRAIN_DATA = "data/train.parquet"
JOB_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DATASET = "data/dataset.parquet"


@dataclass(frozen=True)
class ExperimentInfo:
    """A hub experiment as recorded in the store."""

    name: str
    type: str
    spec: dict[str, Any]
    champion: int | None = None
    incarnation: str | None = None  # None only for experiments made before incarnations existed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunOutcome:
    """What a finished training run's tags say it produced."""

    version: int
    promoted: bool
    reason: str
    job_id: str | None


class ExperimentStore:
    """Hub records kept through any ``MLOpsPlugin``."""

    def __init__(self, mlops: MLOpsPlugin) -> None:
        self.mlops = mlops

    # experiments ---------------------------------------------------------------------------------------------
    def create(self, name: str, experiment_type: str, spec: dict[str, Any], exist_ok: bool = False) -> ExperimentInfo:
        existing = self.mlops.get_experiment(name)
        if existing is not None and TAG_TYPE in existing["tags"]:
            info = self._info(existing)
            if not exist_ok:
                raise ConflictError(f"experiment {name!r} already exists (type {info.type})")
            if info.type != experiment_type:
                raise ConflictError(f"experiment {name!r} exists with type {info.type}, not {experiment_type}")
            if info.spec != spec:
                self.mlops.set_experiment_tags(name, {TAG_SPEC: json.dumps(spec, sort_keys=True)})
            return self.get(name)
        if existing is not None:
            raise ConflictError(
                f"an MLflow experiment named {name!r} already exists and was not created by the hub; "
                "the hub does not adopt (or later delete) experiments it does not own: choose another name"
            )
        if self.mlops.list_versions(name):
            raise ConflictError(
                f"a registered model named {name!r} already exists and was not created by the hub; "
                "the hub does not adopt (or later delete) models it does not own: choose another name"
            )
        incarnation = uuid.uuid4().hex
        tags = {TAG_TYPE: experiment_type, TAG_SPEC: json.dumps(spec, sort_keys=True), TAG_INCARNATION: incarnation}
        self.mlops.create_experiment(name, tags=tags)
        return ExperimentInfo(name, experiment_type, spec, incarnation=incarnation)

    def get(self, name: str) -> ExperimentInfo:
        found = self.mlops.get_experiment(name)
        if found is None or TAG_TYPE not in found["tags"]:
            raise ExperimentNotFound(f"no experiment named {name!r}")
        return self._info(found)

    def list(self) -> list[ExperimentInfo]:
        return [self._info(e) for e in self.mlops.list_experiments(tag=TAG_TYPE)]

    def delete(self, name: str) -> ExperimentInfo:
        """Delete a hub experiment and its model (never an experiment the hub does not own); return what it was."""
        info = self.get(name)
        self.mlops.delete_experiment(name)
        return info

    def incarnation(self, name: str) -> str | None:
        """The incarnation id of the hub experiment ``name`` (``ExperimentNotFound`` once it is deleted)."""
        return self.get(name).incarnation

    def check_incarnation(self, name: str, incarnation: str | None, action: str) -> None:
        """Refuse ``action`` for work started for another incarnation of ``name`` (deleted, maybe re-created)."""
        try:
            current = self.incarnation(name)
        except ExperimentNotFound:
            raise ExperimentNotFound(f"experiment {name!r} was deleted; not going to {action}") from None
        if incarnation is not None and current != incarnation:
            raise ConflictError(
                f"experiment {name!r} was deleted and created again since this work started; not going to {action}"
            )

    def _info(self, record: dict[str, Any]) -> ExperimentInfo:
        tags = record["tags"]
        champion = self.mlops.get_alias(record["name"], CHAMPION)
        return ExperimentInfo(
            record["name"],
            tags[TAG_TYPE],
            json.loads(tags.get(TAG_SPEC, "{}")),
            champion.version if champion else None,
            tags.get(TAG_INCARNATION),
        )

    # training runs -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def training_run(
        self, name: str, *, kind: str = "train", job_id: str | None = None, incarnation: str | None = None
    ) -> Iterator[str]:
        """One training run (FINISHED, or FAILED if the body raises) tagged as a training, with its job id, the
        experiment's incarnation and its process. Runs of ``name`` abandoned by ended processes are closed first."""
        self.end_abandoned_runs(name)
        tags = {
            TAG_KIND: "train",
            TAG_HOST: socket.gethostname(),
            TAG_PID: str(os.getpid()),
            **({TAG_JOB: job_id} if job_id else {}),
            **({TAG_INCARNATION: incarnation} if incarnation else {}),
        }
        with self.mlops.run(name, run_name=f"{name} {kind}", tags=tags) as run_id:
            try:
                yield run_id
            except Exception as exc:
                self._tag_error(run_id, exc)
                raise

    def end_abandoned_runs(self, name: str) -> list[str]:
        """Mark FAILED, with the reason, the training runs of ``name`` still RUNNING although their process on this
        host has ended (killed, or it lost the store before it could end them); return their ids. Runs of other
        hosts are left: their processes cannot be checked from here (and this process's own runs are the MLOps
        plugin's: it retries an end the store missed)."""
        ended = []
        for run in self._runs(name, "train", 50, running=True):
            pid = run.tags.get(TAG_PID, "")
            if run.tags.get(TAG_HOST) != socket.gethostname() or not pid.isdigit() or process_alive(int(pid)):
                continue
            reason = f"abandoned: its process {pid} on {run.tags[TAG_HOST]} ended without closing the run"
            self.mlops.set_tags(run.run_id, {TAG_ERROR: run.tags.get(TAG_ERROR) or reason})
            self.mlops.end_run(run.run_id, "FAILED")
            log.warning("training run %s of %s: %s; marked FAILED", run.run_id, name, reason)
            ended.append(run.run_id)
        return ended

    def _tag_error(self, run_id: str, exc: Exception) -> None:
        """Record why the run failed (redacted, short); a store that cannot take the tag does not hide ``exc``."""
        try:
            self.mlops.set_tags(run_id, {TAG_ERROR: redact(f"{type(exc).__name__}: {exc}")[:500]})
        except Exception as tag_exc:
            log.warning("could not record the error of run %s: %s", run_id, redact(str(tag_exc)))

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self.mlops.log_params(run_id, params)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        self.mlops.log_metrics(run_id, metrics)

    def log_figures(self, run_id: str, figures: Mapping[str, Any]) -> None:
        for figure_name, figure in figures.items():
            self.mlops.log_figure(run_id, figure, figure_name)

    def save_training_data(self, run_id: str, data: pd.DataFrame) -> None:
        self._log_frame(run_id, data, TRAIN_DATA)

    def register_model(self, name: str, run_id: str, model: Experiment, incarnation: str | None = None) -> int:
        """Log ``model`` with the run and register it as a new version of ``name`` tagged with ``incarnation``;
        return the version number."""
        uri = self.mlops.log_model(run_id, model)
        self.check_incarnation(name, incarnation, "register a model version")  # the last moment before it counts
        tags = {TAG_INCARNATION: incarnation} if incarnation else None
        return self.mlops.register_model(name, uri, run_id=run_id, tags=tags).version

    def record_outcome(
        self, name: str, run_id: str, *, version: int, kind: str, promoted: bool, reason: str, figures: list[str]
    ) -> None:
        """Tag the run with the version it made, whether it was promoted and why (the validation's reason), and
        the names of its figures."""
        self.mlops.set_tags(
            run_id,
            {
                TAG_VERSION: str(version),
                TAG_PROMOTED: str(promoted).lower(),
                TAG_VALIDATION: reason[:500],
                TAG_RUN_NAME: f"{name} {kind} v{version}",
                TAG_FIGURES: ",".join(figures)[:500],
            },
        )

    @staticmethod
    def outcome_of(run: RunRecord) -> RunOutcome:
        """The outcome tags of a finished training run."""
        return RunOutcome(
            int(run.tags[TAG_VERSION]),
            run.tags.get(TAG_PROMOTED) == "true",
            run.tags.get(TAG_VALIDATION, ""),
            run.tags.get(TAG_JOB),
        )

    @staticmethod
    def made_a_version(run: RunRecord) -> bool:
        """Whether a training run finished and registered its version (a replayed job can return it)."""
        return run.status == "FINISHED" and TAG_VERSION in run.tags

    def find_job_run(self, name: str, job_id: str) -> RunRecord | None:
        """The newest training run of ``job_id``, if any."""
        if not JOB_ID.fullmatch(job_id):
            raise DataValidationError("job ids are 1-64 letters, digits, '_', '.' or '-'", field="job_id")
        runs = self.mlops.search_runs(
            name,
            filter_string=f"tags.`{TAG_JOB}` = '{job_id}' and tags.`{TAG_KIND}` = 'train'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        return runs[0] if runs else None

    def find_job(self, job_id: str) -> RunRecord | None:
        """The newest training run of ``job_id`` in any hub experiment, if any."""
        for info in self.list():
            if (run := self.find_job_run(info.name, job_id)) is not None:
                return run
        return None

    def end_run(self, run_id: str, status: str) -> None:
        self.mlops.end_run(run_id, status)

    def start_monitoring(self, name: str, scorer_id: str) -> str:
        """A RUNNING run (kind ``monitor``) for one scorer process's per-interval metrics; returns its id."""
        tags = {TAG_KIND: "monitor", TAG_RUN_NAME: f"{name} monitor {scorer_id}"}
        return self.mlops.start_run(name, run_name=f"{name} monitor {scorer_id}", tags=tags)

    def log_monitoring(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """One interval's monitoring metrics, batched, at ``step``."""
        self.mlops.log_metrics(run_id, metrics, step=step)

    def log_events(self, run_id: str, events: list[dict[str, Any]]) -> None:
        """Record monitoring events in the run: one JSON tag each (details trimmed to fit a tag), and an
        ``events.<kind>`` metric at the window's end row."""
        tags, counts = {}, {}
        for event in events:
            text = json.dumps(event, allow_nan=False)
            if len(text) > MAX_TAG_CHARS:  # many drifted features: keep the headline, drop the per-feature detail
                text = json.dumps({**event, "values": {}, "thresholds": {}, "features": event["features"][:50]})
            tags[f"{TAG_EVENT}{event['time']}.{uuid.uuid4().hex[:8]}"] = text
            counts[event["kind"]] = counts.get(event["kind"], 0) + 1
        self.mlops.set_tags(run_id, tags)
        step = max((int(e.get("window", {}).get("end_row", 0)) for e in events), default=0)
        self.mlops.log_metrics(run_id, {f"events.{kind}": float(n) for kind, n in counts.items()}, step=step)

    def monitoring_runs(self, name: str, limit: int = 10) -> list[RunRecord]:
        """The newest monitoring runs (one per scorer process) of ``name``, newest first."""
        return self._runs(name, "monitor", limit)

    def _runs(self, name: str, kind: str, limit: int, *, running: bool = False) -> list[RunRecord]:
        """The newest runs of ``name`` of one kind (``train``, ``monitor``), only the RUNNING ones with ``running``."""
        status = " and attributes.status = 'RUNNING'" if running else ""
        return self.mlops.search_runs(
            name,
            filter_string=f"tags.`{TAG_KIND}` = '{kind}'{status}",
            max_results=limit,
            order_by=["attributes.start_time DESC"],
        )

    def recent_events(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest monitoring events of ``name``'s scorers, newest first."""
        events = [
            json.loads(value)
            for run in self.monitoring_runs(name)
            for key, value in run.tags.items()
            if key.startswith(TAG_EVENT)
        ]
        return sorted(events, key=lambda event: event.get("time", 0), reverse=True)[:limit]

    @staticmethod
    def run_summary(run: RunRecord) -> dict[str, Any]:
        """A training run as one plain row: experiment, run, status, job, version, promoted, started."""
        return {
            "experiment": run.experiment,
            "run_id": run.run_id,
            "status": run.status,
            "job_id": run.tags.get(TAG_JOB),
            "version": run.tags.get(TAG_VERSION),
            "promoted": run.tags.get(TAG_PROMOTED) == "true",
            "started": run.start_time,
            "error": run.tags.get(TAG_ERROR),
        }

    def training_runs(self, name: str, limit: int = 20) -> list[RunRecord]:
        """The newest training runs of ``name`` (jobs and direct trainings), newest first."""
        return self._runs(name, "train", limit)

    def training_data(self, name: str, version: int | None = None) -> pd.DataFrame:
        """The training snapshot of ``version`` (default: the newest version)."""
        versions = self.versions(name)
        chosen = next((v for v in versions if version is None or v.version == version), None)
        if chosen is None or chosen.run_id is None:
            raise ExperimentNotFound(f"experiment {name!r} has no trained version {version or ''}".strip())
        return self._read_frame(chosen.run_id, TRAIN_DATA)

    # datasets ------------------------------------------------------------------------------------------------
    def save_dataset(self, name: str, data: pd.DataFrame) -> str:
        """Store ``data`` as a dataset run (Parquet) and return the run id: the reference jobs carry."""
        with self.mlops.run(name, run_name=f"{name} dataset", tags={TAG_KIND: "dataset"}) as run_id:
            self.mlops.log_params(run_id, {"n_rows": len(data), "n_columns": data.shape[1]})
            self._log_frame(run_id, data, DATASET)
        return run_id

    def drop_dataset(self, run_id: str) -> None:
        """Delete a dataset run that no job will read (its submission failed); never raises."""
        try:
            self.mlops.delete_run(run_id)
        except (HubError, NotImplementedError) as exc:
            log.warning("could not delete the unused dataset run %s: %s", run_id, redact(str(exc)))

    def load_dataset(self, run_id: str) -> pd.DataFrame:
        return self._read_frame(run_id, DATASET)

    def _log_frame(self, run_id: str, data: pd.DataFrame, artifact: str) -> None:
        with tempfile.TemporaryDirectory(prefix="experimenthub-") as tmp:
            path = Path(tmp) / Path(artifact).name
            try:
                data.to_parquet(path, index=False)
            except (ValueError, TypeError, UnicodeError, ArrowError):  # mixed types, unencodable text
                raise DataValidationError(
                    "a column mixes numbers and text; give each column one type", field="data"
                ) from None
            self.mlops.log_artifact(run_id, path, str(Path(artifact).parent))

    def _read_frame(self, run_id: str, artifact: str) -> pd.DataFrame:
        with tempfile.TemporaryDirectory(prefix="experimenthub-") as tmp:
            return pd.read_parquet(self.mlops.download_artifact(run_id, artifact, tmp))

    # models --------------------------------------------------------------------------------------------------
    def versions(self, name: str) -> list[ModelVersion]:
        self.get(name)
        return self.mlops.list_versions(name)

    def resolve_version(self, name: str, version: int | None = None, alias: str | None = None) -> ModelVersion:
        """The version asked for; by default the champion, else the newest version. Only versions made by the
        current incarnation of ``name`` are served (see the module's docstring)."""
        if version is not None and alias is not None:
            raise DataValidationError("give a version or an alias, not both", field="alias")
        incarnation = self.incarnation(name)  # an unknown experiment says so
        if version is not None:
            found = next((v for v in self.mlops.list_versions(name) if v.version == int(version)), None)
            if found is None:
                raise ExperimentNotFound(f"experiment {name!r} has no model version {version}")
            return self._owned(name, found, incarnation)
        if alias is not None:
            found = self.mlops.get_alias(name, alias)
            if found is None:
                raise ExperimentNotFound(f"experiment {name!r} has no model with alias {alias!r}")
            return self._owned(name, found, incarnation)
        champion = self.mlops.get_alias(name, CHAMPION)
        if champion is not None and self.made_by(champion, incarnation):
            return champion
        versions = [v for v in self.mlops.list_versions(name) if self.made_by(v, incarnation)]
        if not versions:
            raise ExperimentNotFound(f"experiment {name!r} has no trained model yet; train it first")
        log.warning("experiment %s has no champion; using its newest version %s", name, versions[0].version)
        return versions[0]

    @staticmethod
    def made_by(version: ModelVersion, incarnation: str | None) -> bool:
        """Whether ``version`` was made by ``incarnation`` (any version, for an experiment older than incarnations)."""
        return incarnation is None or version.tags.get(TAG_INCARNATION) == incarnation

    def _owned(self, name: str, version: ModelVersion, incarnation: str | None) -> ModelVersion:
        if not self.made_by(version, incarnation):
            raise ConflictError(
                f"model version {version.version} of {name!r} was made for a deleted experiment of the same name; "
                "it is not served or promoted"
            )
        return version

    def version_details(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` versions with what their training runs recorded: validation verdict and reason,
        validation metrics, figure names, and whether the version is the champion."""
        champion = self.champion(name)
        rows = []
        for version in self.versions(name)[:limit]:
            run = self.mlops.get_run(version.run_id) if version.run_id else None
            tags = run.tags if run is not None else {}
            metrics = run.metrics if run is not None else {}
            rows.append(
                {
                    "version": version.version,
                    "created": version.created,
                    "run_id": version.run_id,
                    "champion": champion is not None and champion.version == version.version,
                    "promoted": tags.get(TAG_PROMOTED) == "true",
                    "reason": tags.get(TAG_VALIDATION, ""),
                    "metrics": {
                        k.removeprefix("validation."): v for k, v in metrics.items() if k.startswith("validation.")
                    },
                    "figures": [f for f in tags.get(TAG_FIGURES, "").split(",") if f],
                }
            )
        return rows

    def latest_monitoring(self, name: str) -> dict[str, Any] | None:
        """The newest interval any scorer of ``name`` logged to its monitoring run: rows, rate, alarm rate,
        dead letters, lag, served version, ``updated`` (epoch ms of that interval) and whether the scorer ended its
        run (``ended``), or None when no scorer has run."""
        runs = self.mlops.search_runs(
            name,
            filter_string=f"tags.`{TAG_KIND}` = 'monitor'",
            max_results=10,
            order_by=["attributes.start_time DESC"],
        )
        latest = max(runs, key=lambda run: run.metrics.get(MONITOR_UPDATED, 0.0), default=None)
        if latest is None or MONITOR_UPDATED not in latest.metrics:
            return None
        metrics = latest.metrics
        return {
            "rows": metrics.get("rows_scored"),
            "rate": metrics.get("rows_per_s"),
            "alarm_rate": metrics.get("alarm_rate"),
            "dead_letters": metrics.get("dead_lettered"),
            "lag": metrics.get("consumer_lag"),
            "served_version": int(metrics["model_version"]) if "model_version" in metrics else None,
            "updated": int(metrics[MONITOR_UPDATED]),
            "ended": latest.status != "RUNNING",
            "run_id": latest.run_id,
        }

    def champion(self, name: str) -> ModelVersion | None:
        return self.mlops.get_alias(name, CHAMPION)

    def validation_reason(self, version: ModelVersion) -> str:
        """Why the champion gate passed or refused ``version`` (from its training run), or "" when unknown."""
        if version.run_id is None:
            return ""
        return self.mlops.get_run(version.run_id).tags.get(TAG_VALIDATION, "")

    def set_champion(self, name: str, version: int) -> None:
        """Point ``champion`` at a version known to exist (``promote`` checks it first)."""
        self.mlops.set_alias(name, CHAMPION, version)

    def load_model(self, name: str, version: int) -> Experiment:
        return self.mlops.load_model(name, version=version)

    def promote(self, name: str, version: int) -> ModelVersion:
        chosen = self.resolve_version(name, version=version)
        self.mlops.set_alias(name, CHAMPION, chosen.version)
        return self.resolve_version(name, version=version)

    def download_figure(self, name: str, figure: str, version: int | None = None) -> dict[str, Any]:
        """The plotly JSON of a figure logged with a version's training run."""
        chosen = self.resolve_version(name, version=version)
        with tempfile.TemporaryDirectory(prefix="experimenthub-") as tmp:
            try:
                path = self.mlops.download_artifact(chosen.run_id, f"figures/{figure}.json", tmp)
            except PluginUnavailable:
                raise  # the store is down: say so, do not claim the figure is missing
            except (HubError, OSError) as exc:
                raise ExperimentNotFound(
                    f"experiment {name!r} version {chosen.version} has no figure {figure!r}"
                ) from exc
            return json.loads(Path(path).read_text())
