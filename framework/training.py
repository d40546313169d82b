"""One training of a version: fit, validate, figures, one tracked run, register, and promote if it validates.

``train_version`` is the only place a model version is made, whether the call came from ``hub.train``, a retrain,
an in-process job or a Celery worker. ``retrain_frame`` builds the data a retrain fits on.

>>> result = train_version(store, "pump-7", experiment, frame)          # -> TrainResult
>>> result.version, result.promoted, result.validation.reason
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from framework.errors import ExperimentNotFound, HubError
from framework.Experiment import Experiment, Validation, coerce_timestamps
from framework.plugins.mlops import RunRecord
from framework.store import ExperimentStore

__all__ = ["TrainResult", "result_of_run", "retrain_frame", "train_version"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What one training produced."""

    experiment: str
    run_id: str
    version: int
    metrics: dict[str, float]
    promoted: bool
    validation: Validation
    job_id: str | None = None
    figures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_version(
    store: ExperimentStore,
    name: str,
    experiment: Experiment,
    data: pd.DataFrame,
    *,
    job_id: str | None = None,
    kind: str = "train",
    incarnation: str | None = None,
) -> TrainResult:
    """Fit ``experiment`` on ``data`` inside one run; log everything; register a version; maybe promote it.

    The run ends FAILED if anything raises, and the error propagates. ``champion`` moves to the new version only
    if it validates, and only forward (a newer version trained concurrently keeps it).

    ``incarnation`` is the experiment incarnation the work was started for (default: the current one). If the
    experiment was deleted (and maybe created again) meanwhile, nothing is registered or promoted: the run fails
    with ``ExperimentNotFound`` or ``ConflictError``.
    """
    incarnation = incarnation if incarnation is not None else store.incarnation(name)
    store.check_incarnation(name, incarnation, "train")
    with store.training_run(name, kind=kind, job_id=job_id, incarnation=incarnation) as run_id:
        store.log_params(run_id, {"n_rows": len(data), **experiment.params()})
        experiment.fit(data)
        validation = experiment.validate(reference=_champion_model(store, name, experiment))
        metrics = {**experiment.metrics_, **{f"validation.{k}": v for k, v in validation.metrics.items()}}
        store.log_metrics(run_id, metrics)
        figures = experiment.figures()
        store.log_figures(run_id, figures)
        store.save_training_data(run_id, data)
        version = store.register_model(name, run_id, experiment, incarnation)
        champion = store.champion(name)
        promoted = validation.passed and (champion is None or champion.version < version)
        if promoted:
            store.check_incarnation(name, incarnation, "promote a model version")
            store.set_champion(name, version)
        store.record_outcome(
            name, run_id, version=version, kind=kind, promoted=promoted, reason=validation.reason, figures=list(figures)
        )
    log.info("trained %s: run %s, version %s, promoted=%s", name, run_id, version, promoted)
    return TrainResult(name, run_id, version, metrics, promoted, validation, job_id, list(figures))


def _champion_model(store: ExperimentStore, name: str, experiment: Experiment) -> Experiment | None:
    """The fitted champion, for types whose gate compares with it; None without one, or when it cannot load."""
    if not experiment.compares_with_champion or (champion := store.champion(name)) is None:
        return None
    try:
        reference = store.load_model(name, champion.version)
    except HubError as exc:
        log.warning("%s: champion v%s not loaded for the comparison: %s", name, champion.version, exc)
        return None
    return reference if type(reference) is type(experiment) else None


def result_of_run(run: RunRecord) -> TrainResult:
    """Rebuild a ``TrainResult`` from a finished training run (for idempotent job replays)."""
    outcome = ExperimentStore.outcome_of(run)
    validation_metrics = {
        k.removeprefix("validation."): v for k, v in run.metrics.items() if k.startswith("validation.")
    }
    validation = Validation(outcome.promoted, outcome.reason, validation_metrics)
    return TrainResult(
        run.experiment, run.run_id, outcome.version, dict(run.metrics), outcome.promoted, validation, outcome.job_id
    )


def retrain_frame(
    store: ExperimentStore, name: str, experiment: Experiment, data: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The newest training snapshot plus ``data``, cut to the spec's ``retrain.window`` (most recent rows)."""
    frames = []
    try:
        frames.append(store.training_data(name))
    except ExperimentNotFound:
        if data is None:
            raise
    if data is not None:
        frames.append(data)
    column = experiment.spec.timestamp
    if len(frames) > 1 and column:  # e.g. datetimes in the snapshot, ISO strings from the stream
        frames = [f.assign(**{column: coerce_timestamps(f[column], column)}) if column in f else f for f in frames]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    window = experiment.spec.retrain.window
    return frame.tail(window).reset_index(drop=True) if window is not None else frame
