"""The facade: owns plugins and experiments; train / predict / retrain / load / stream / jobs.

>>> from framework.ExperimentHub import ExperimentHub
>>> with ExperimentHub.from_config("hub_config.yaml") as hub:
...     hub.check_plugin_health()
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.config import ExperimentEntry, HubConfig, config_source, default_config, load_config, state_dir
from framework.errors import (
    ConfigError,
    HubError,
    PluginError,
    redact,
    redact_details,
)
from framework.jobs import RETRAIN_TASK, TRAIN_TASK, JobInfo, LocalExecutor
from framework.plugins.base import Plugin
from framework.plugins.registry import build_plugin, check_config

if TYPE_CHECKING:
    import pandas as pd

    from framework.Experiment import Experiment
    from framework.plugins.mlops import ModelVersion
    from framework.records import DataInput
    from framework.store import ExperimentInfo, ExperimentStore
    from framework.training import TrainResult

__all__ = ["ExperimentHub"]

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 5.0
MODEL_CACHE_SIZE = 8
RESOLVE_TTL_S = 5.0  # how long load() trusts what a version/alias/champion resolved to without asking the store


class ExperimentHub:
    """Owns the plugins (by type) and the experiment types the config allows.

    ``ExperimentHub()`` connects to nothing; register plugins yourself, or use ``from_config``.
    """

    def __init__(self, config: HubConfig | None = None) -> None:
        self.config = config if config is not None else default_config()
        self.state_dir: Path = state_dir(self.config)
        self._plugins: dict[str, Plugin] = {}
        self._failed: dict[str, str] = {}  # plugin type -> why it could not start (strict=False only)
        self._models: OrderedDict[tuple[str, int, str | None], Experiment] = OrderedDict()
        self._models_lock = threading.Lock()
        self._resolved: dict[tuple[str, int | None, str | None], tuple[float, ModelVersion]] = {}
        self._served: dict[tuple[str, int | None, str | None, int], tuple[float, dict[str, Any]]] = {}
        self.resolve_ttl_s = RESOLVE_TTL_S
        self._local_jobs: LocalExecutor | None = None

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, path: str | Path | None = None, *, strict: bool = True, embedded: bool = False
    ) -> ExperimentHub:
        """Build the hub from ``path`` (default: ``./hub_config.yaml``, else the embedded default).

        Plugins are constructed and initialized in the order mlops, datastream, taskqueue. If one fails, those
        already initialized are shut down and a ``PluginError`` names the config file, the plugin and the cause.
        With ``strict=False`` (for health reports) a plugin that fails is left out and reported unhealthy instead.
        ``embedded=True`` (or ``$EXPERIMENTHUB_EMBEDDED=1`` when ``path`` is None) forces the embedded default.
        """
        if embedded and path is not None:
            raise TypeError("give a config path or embedded=True, not both")
        source = None if embedded else config_source(path)
        config = load_config(source) if source is not None else default_config()
        try:
            return cls.from_hub_config(config, strict=strict)
        except PluginError as exc:
            where = str(source) if source is not None else "embedded default"
            raise PluginError(f"{where}: {exc}", plugin_type=exc.plugin_type) from exc

    @classmethod
    def from_hub_config(cls, config: HubConfig, *, strict: bool = True) -> ExperimentHub:
        check_config(config)  # every plugin's type and config, and the production rules, before any plugin starts
        hub = cls(config)
        try:
            for plugin_type, entry in config.plugins.enabled().items():
                try:
                    hub.register_plugin(build_plugin(plugin_type, entry.type, entry.config))
                except PluginError as exc:
                    if strict:
                        raise
                    hub._failed[plugin_type] = str(exc)
        except BaseException:
            hub.shutdown()
            raise
        return hub

    # -- plugins ----------------------------------------------------------------------------------------------
    def register_plugin(self, plugin: Plugin) -> None:
        """Check the plugin's shape, initialize it, then register it (replacing, and shutting down, the old one)."""
        name, ptype = type(plugin).__name__, getattr(plugin, "plugin_type", None)
        if not isinstance(ptype, str) or not ptype:
            raise PluginError(f"plugin {name}: plugin_type must be a non-empty string, got {ptype!r}")
        if missing := [m for m in ("initialize", "shutdown", "health_check") if not callable(getattr(plugin, m, None))]:
            raise PluginError(
                f"plugin {name} ({ptype}): missing {', '.join(m + '()' for m in missing)}", plugin_type=ptype
            )
        try:
            plugin.initialize()
        except HubError as exc:
            raise PluginError(f"plugin {name} ({ptype}): initialize() failed: {exc}", plugin_type=ptype) from exc
        except Exception as exc:
            raise PluginError(
                f"plugin {name} ({ptype}): initialize() failed: {type(exc).__name__}: {exc}", plugin_type=ptype
            ) from exc
        old = self._plugins.pop(ptype, None)
        if old is not None and old is not plugin:
            self._shutdown_plugin(ptype, old)
        self._plugins[ptype] = plugin
        self._failed.pop(ptype, None)
        log.info("registered %s plugin %s", ptype, name)

    def get_plugin(self, plugin_type: str) -> Any | None:
        """The registered plugin of ``plugin_type`` ("mlops", "datastream", "taskqueue"), or None."""
        return self._plugins.get(plugin_type)

    @property
    def plugins(self) -> dict[str, Plugin]:
        """A copy of the registered plugins, in registration order."""
        return dict(self._plugins)

    def check_plugin_health(self, timeout: float = HEALTH_TIMEOUT_S) -> dict[str, dict[str, Any]]:
        """``{plugin_type: {"healthy": bool, "details": dict}}``. Never raises; each check has ``timeout`` seconds."""
        report: dict[str, dict[str, Any]] = {
            ptype: {"healthy": False, "details": {"error": redact(reason)}} for ptype, reason in self._failed.items()
        }
        if not self._plugins:
            return report
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(self._plugins), thread_name_prefix="health")
        futures = {ptype: pool.submit(plugin.health_check) for ptype, plugin in self._plugins.items()}
        for ptype, future in futures.items():
            try:
                healthy, details = future.result(timeout=timeout)
                report[ptype] = {"healthy": bool(healthy), "details": redact_details(dict(details))}
            except concurrent.futures.TimeoutError:
                report[ptype] = {"healthy": False, "details": {"error": f"health check timed out after {timeout:g} s"}}
            except Exception as exc:
                report[ptype] = {"healthy": False, "details": {"error": redact(f"{type(exc).__name__}: {exc}")}}
        pool.shutdown(wait=False, cancel_futures=True)
        return report

    # -- lifecycle --------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Shut every plugin down in reverse registration order. Idempotent; one failure does not stop the rest."""
        if self._local_jobs is not None:
            self._local_jobs.shutdown()
            self._local_jobs = None
        for ptype in reversed(list(self._plugins)):
            self._shutdown_plugin(ptype, self._plugins.pop(ptype))

    def _shutdown_plugin(self, ptype: str, plugin: Plugin) -> None:
        try:
            plugin.shutdown()
        except Exception as exc:
            log.warning("%s plugin %s failed to shut down: %s", ptype, type(plugin).__name__, redact(str(exc)))

    def __enter__(self) -> ExperimentHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # -- experiment types -------------------------------------------------------------------------------------
    @property
    def available_experiments(self) -> dict[str, ExperimentEntry]:
        """Experiment types the config lists and enables: the only ones this hub will instantiate."""
        return self.config.experiment_types()

    def experiment_class(self, experiment_type: str) -> type:
        """Import the class of a listed, enabled experiment type."""
        from framework.Experiment import Experiment

        entry = self.available_experiments.get(experiment_type)
        if entry is None:
            known = ", ".join(self.available_experiments) or "(none enabled)"
            raise ConfigError(
                f"unknown or disabled experiment type {experiment_type!r}; available: {known}", field="type"
            )
        try:
            cls = getattr(import_module(entry.module), entry.class_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"cannot load {entry.module}.{entry.class_name}: {exc}", field=f"experiments.{entry.name}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Experiment)):
            raise ConfigError(
                f"{entry.module}.{entry.class_name} is not an Experiment subclass", field=f"experiments.{entry.name}"
            )
        return cls

    # -- experiments ------------------------------------------------------------------------------------------
    @property
    def store(self) -> ExperimentStore:
        """The hub's records in the MLOps plugin; a ``PluginError`` when no mlops plugin is registered."""
        from framework.store import ExperimentStore

        mlops = self._plugins.get("mlops")
        if mlops is None:
            raise PluginError("no mlops plugin is registered; experiments live in the MLOps store", plugin_type="mlops")
        return ExperimentStore(mlops)

    def create_experiment(
        self, name: str, type: str, spec: dict[str, Any] | None = None, *, exist_ok: bool = False
    ) -> ExperimentInfo:
        """Create a hub experiment of a listed ``type`` with a validated ``spec``.

        >>> spec = {"model": {"name": "pca"}, "timestamp": "timestamp", "label": "fault"}
        >>> hub.create_experiment("pump-7", "fault_detection", spec, exist_ok=True)   # exist_ok: re-runnable
        """
        experiment = self.experiment_class(type)(spec or {})
        normalized = experiment.spec.model_dump(mode="json", by_alias=True)
        info = self.store.create(name, type, normalized, exist_ok=exist_ok)
        if (stream := self._plugins.get("datastream")) is not None:  # producers may publish before a scorer runs
            from framework.streaming import declare_queues

            declare_queues(stream, name)
        return info

    def experiments(self) -> list[ExperimentInfo]:
        """Every hub experiment in the store (rebuilt from the store, not from memory)."""
        return self.store.list()

    def get_experiment(self, name: str) -> ExperimentInfo:
        return self.store.get(name)

    def delete_experiment(self, name: str, *, purge_queues: bool = False) -> None:
        """Delete the hub experiment, its runs and its registered model, and cancel its queued and running jobs.

        Only experiments the hub created are deleted. A job of the deleted experiment that still runs somewhere
        cannot register or promote a version afterwards (it checks the experiment's incarnation first). Its
        queues (and the messages in them) stay unless ``purge_queues``.
        """
        from framework.jobs import jobs_of

        job_ids = jobs_of(self.jobs_backend, self.store, name)
        self.store.delete(name)
        if purge_queues:
            from framework.streaming import delete_queues

            delete_queues(self._datastream(), name)
        for job_id in job_ids:
            try:
                self.cancel_job(job_id)
            except HubError as exc:  # the experiment is gone; a job that cannot be cancelled cannot register either
                log.warning("deleted %s but could not cancel its job %s: %s", name, job_id, redact(str(exc)))
        self._forget(name)

    def new_experiment(self, name: str) -> Experiment:
        """A fresh, unfitted experiment object built from the stored type and spec."""
        info = self.store.get(name)
        return self.experiment_class(info.type)(info.spec)

    def train(self, name: str, data: DataInput, *, job_id: str | None = None) -> TrainResult:
        """Fit on ``data`` (DataFrame, CSV/Parquet/Excel path, or records), log one run, register a version.

        ``champion`` moves to the new version only if it validates (see ``Experiment.validate``).
        """
        from framework.records import load_frame
        from framework.training import train_version

        info = self.store.get(name)
        experiment = self.experiment_class(info.type)(info.spec)
        frame = load_frame(data)
        experiment.check_training_data(frame)
        try:
            return train_version(self.store, name, experiment, frame, job_id=job_id, incarnation=info.incarnation)
        finally:
            self._forget(name)  # a new champion is served at once by this hub

    def retrain(self, name: str, data: DataInput | None = None, *, job_id: str | None = None) -> TrainResult:
        """Train a new version on recent data: the newest training snapshot plus ``data``, cut to the
        spec's ``retrain.window`` (most recent rows)."""
        from framework.records import load_frame
        from framework.training import retrain_frame, train_version

        info = self.store.get(name)
        experiment = self.experiment_class(info.type)(info.spec)
        frame = retrain_frame(self.store, name, experiment, None if data is None else load_frame(data))
        try:
            return train_version(
                self.store, name, experiment, frame, job_id=job_id, kind="retrain", incarnation=info.incarnation
            )
        finally:
            self._forget(name)

    def load(self, name: str, version: int | None = None, alias: str | None = None) -> Experiment:
        """The fitted experiment of a version, an alias, or by default the champion (else the newest version).

        What the request resolves to is remembered for ``resolve_ttl_s`` seconds, so predicting with a cached model
        does not ask the store every call; a new champion is served at most that long after it was set.
        """
        return self._load_version(name, self._resolve(name, version, alias))

    def _load_version(self, name: str, chosen: ModelVersion) -> Experiment:
        key = (name, chosen.version, chosen.run_id)  # a re-created experiment's version 1 is another model
        with self._models_lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = self.store.load_model(name, chosen.version)
        with self._models_lock:
            self._models[key] = model
            while len(self._models) > MODEL_CACHE_SIZE:
                self._models.popitem(last=False)
        return model

    def _resolve(self, name: str, version: int | None, alias: str | None) -> ModelVersion:
        request = (name, version, alias)
        with self._models_lock:
            cached = self._resolved.get(request)
        if cached is not None and time.monotonic() - cached[0] < self.resolve_ttl_s:
            return cached[1]
        chosen = self.store.resolve_version(name, version=version, alias=alias)
        with self._models_lock:
            self._resolved[request] = (time.monotonic(), chosen)
            for answers in (self._resolved, self._served):
                if len(answers) > 4 * MODEL_CACHE_SIZE:  # bounded: drop the oldest answers
                    for stale in sorted(answers, key=lambda k: answers[k][0])[:MODEL_CACHE_SIZE]:
                        del answers[stale]
        return chosen

    def _forget(self, name: str) -> None:
        """Drop the cached models and resolutions of ``name`` (after a delete or a promotion)."""
        with self._models_lock:
            for key in [k for k in self._models if k[0] == name]:
                del self._models[key]
            for request in [k for k in self._resolved if k[0] == name]:
                del self._resolved[request]
            for served in [k for k in self._served if k[0] == name]:
                del self._served[served]

    def predict(
        self, name: str, data: DataInput | None = None, *, version: int | None = None, alias: str | None = None
    ) -> pd.DataFrame:
        """Score ``data`` with the served model (champion by default); vectorised over the whole batch.

        ``result.attrs`` says what scored: ``model_version``, ``champion`` (bool) and, when the experiment has no
        champion (the newest version answers), ``warning`` with the reason its validation failed.
        """
        from framework.records import load_frame

        store = self.store
        chosen = self._resolve(name, version, alias)  # trusted for resolve_ttl_s, like load()
        model = self._load_version(name, chosen)
        result = _utc(model.predict(load_frame(data)) if data is not None else model.predict(None))
        asked = version is not None or alias is not None
        key = (name, version, alias, chosen.version)
        with self._models_lock:
            cached = self._served.get(key)
        if cached is None or time.monotonic() - cached[0] >= self.resolve_ttl_s:  # trusted as long as _resolve
            cached = (time.monotonic(), self._served_by(store, name, chosen, asked=asked))
            with self._models_lock:
                self._served[key] = cached
        result.attrs.update(cached[1])
        return result

    @staticmethod
    def _served_by(store: ExperimentStore, name: str, chosen: ModelVersion, *, asked: bool) -> dict[str, Any]:
        """``model_version``, ``champion`` and, with no champion at all, a ``warning`` naming the reason."""
        from framework.store import CHAMPION

        champion = chosen if CHAMPION in chosen.aliases else store.champion(name)
        is_champion = champion is not None and champion.version == chosen.version
        served: dict[str, Any] = {"model_version": chosen.version, "champion": is_champion}
        if champion is None and not asked:
            reason = store.validation_reason(chosen) or "no version has validated"
            served["warning"] = (
                f"{name} has no champion; version {chosen.version} answered although it did not validate: {reason}"
            )
        return served

    def evaluate(
        self, name: str, data: DataInput, *, version: int | None = None, alias: str | None = None
    ) -> dict[str, float]:
        """Metrics of the served model (champion by default) against the labels in ``data``: detection metrics
        (ROC-AUC, PR-AUC, F1, detection rate, delay) or forecast metrics (MASE, sMAPE, coverage, ...)."""
        from framework.records import load_frame

        return self.load(name, version=version, alias=alias).evaluate(load_frame(data))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every model version of the experiment, newest first, with aliases."""
        return self.store.versions(name)

    def version_details(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest versions with their validation verdict, reason, metrics and figure names (for dashboards)."""
        return self.store.version_details(name, limit)

    def monitoring_status(self, name: str) -> dict[str, Any] | None:
        """The newest monitoring interval of ``name``'s scorers (rows, rate, alarm rate, lag, served version,
        ``updated`` in epoch ms) from the store, or None when no scorer has run."""
        return self.store.latest_monitoring(name)

    def promote(self, name: str, version: int) -> ModelVersion:
        """Move ``champion`` to ``version`` by hand; a version that cannot be served (say, its model comes from
        outside the store and is refused) is refused here too."""
        self.load(name, version=version)
        promoted = self.store.promote(name, version)
        self._forget(name)
        return promoted

    def figure(self, name: str, figure: str, version: int | None = None) -> dict[str, Any]:
        """The plotly JSON of a figure stored with a version's training run (champion by default)."""
        return self.store.download_figure(name, figure, version=version)

    # -- jobs -------------------------------------------------------------------------------------------------
    @property
    def jobs_backend(self) -> Any:
        """The taskqueue plugin when one is registered, else the in-process executor (same interface)."""
        queue = self._plugins.get("taskqueue")
        if queue is not None:
            return queue
        if self._local_jobs is None:
            tasks = {TRAIN_TASK: self.run_job, RETRAIN_TASK: functools.partial(self.run_job, kind="retrain")}
            self._local_jobs = LocalExecutor(tasks)
        return self._local_jobs

    def submit_training(self, name: str, data: DataInput, *, job_id: str | None = None) -> str:
        """Queue a training job on ``data`` and return the job id. Workers get the data by reference (a stored
        dataset); in-process jobs get the frame itself."""
        from framework.records import load_frame

        info = self.store.get(name)
        frame = load_frame(data)
        self.experiment_class(info.type)(info.spec).check_training_data(frame)  # a bad column fails here
        return self._submit(TRAIN_TASK, info, frame, job_id)

    def submit_retrain(self, name: str, data: DataInput | None = None, *, job_id: str | None = None) -> str:
        """Queue a retrain job (newest training snapshot plus ``data``, cut to the spec's window); return its id."""
        from framework.records import load_frame

        info = self.store.get(name)
        frame = None if data is None else load_frame(data)
        if frame is not None:
            self.experiment_class(info.type)(info.spec).check_training_data(frame)
        return self._submit(RETRAIN_TASK, info, frame, job_id)

    def _submit(self, task: str, info: ExperimentInfo, frame: pd.DataFrame | None, job_id: str | None) -> str:
        job_id = job_id or uuid.uuid4().hex
        backend = self.jobs_backend
        name = info.name
        kwargs: dict[str, Any] = {"job_id": job_id, "experiment": name, "incarnation": info.incarnation}
        if isinstance(backend, LocalExecutor):
            kwargs["data"] = frame  # same process: no round trip through the store
            return backend.submit_task(task, kwargs, task_id=job_id)
        dataset = kwargs["dataset_run_id"] = self.store.save_dataset(name, frame) if frame is not None else None
        try:
            return backend.submit_task(task, kwargs, task_id=job_id)
        except BaseException:
            if dataset is not None:  # the job was never queued: leave no copy of its data behind
                self.store.drop_dataset(dataset)
            raise

    def run_job(
        self,
        job_id: str,
        experiment: str,
        dataset_run_id: str | None = None,
        kind: str = "train",
        data: pd.DataFrame | None = None,
        incarnation: str | None = None,
    ) -> dict[str, Any]:
        """Execute a train or retrain job (on a worker or in-process); idempotent by ``job_id``. A job submitted
        for an ``incarnation`` of the experiment that has been deleted since fails without registering anything."""
        from framework.jobs import run_job

        try:
            return run_job(
                self.store,
                self.new_experiment,
                job_id,
                experiment,
                kind=kind,
                dataset_run_id=dataset_run_id,
                data=data,
                incarnation=incarnation,
            )
        finally:
            self._forget(experiment)  # the job may have moved the champion: serve it at once

    def job(self, job_id: str) -> JobInfo:
        """State of a job (queued, running, succeeded, failed, cancelled) with its result or error, from any
        process: a job this process does not know is read from its training run in the store."""
        from framework.jobs import job_info

        return job_info(self.jobs_backend, self._store_or_none(), job_id)

    def training_history(self, name: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Recent trainings (jobs included) from the store, newest first: one dict per run."""
        from framework.jobs import training_history

        names = [name] if name is not None else [info.name for info in self.experiments()]
        return training_history(self.store, names, limit)

    def wait_job(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job ends; return its result or raise ``JobFailed``."""
        return self.jobs_backend.get_result(job_id, timeout=timeout)

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job; a training run it had started ends as KILLED (not left RUNNING)."""
        from framework.jobs import cancel_job

        return cancel_job(self.jobs_backend, self._store_or_none(), job_id)

    def _store_or_none(self) -> ExperimentStore | None:
        return self.store if "mlops" in self._plugins else None

    # -- streams ----------------------------------------------------------------------------------------------
    def served_version(self, name: str) -> int:
        """The version in service: the champion, else the newest version (what ``load(name)`` returns)."""
        return self.store.resolve_version(name).version

    def start_monitoring(self, name: str, scorer_id: str) -> str:
        """Open the monitoring run of one scorer process (see ``streaming.StreamScorer``); returns its id."""
        return self.store.start_monitoring(name, scorer_id)

    def log_monitoring(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        self.store.log_monitoring(run_id, metrics, step)

    def end_monitoring(self, run_id: str) -> None:
        self.store.end_run(run_id, "FINISHED")

    def log_events(self, run_id: str, events: list[dict[str, Any]]) -> None:
        self.store.log_events(run_id, events)

    def reference_data(self, name: str, version: int) -> pd.DataFrame | None:
        """The training snapshot of ``version``: the drift monitor's reference."""
        return self.store.training_data(name, version)

    def recent_events(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest drift, alert and retrain events of ``name``'s scorers (dicts with ``time`` in epoch ms,
        ``kind``, ``features``, ``statistic``, ``value``, ``threshold``, ``action``, ``window``...), newest first."""
        self.store.get(name)
        return self.store.recent_events(name, limit)

    def monitoring_report(self, name: str, limit: int = 50) -> dict[str, Any]:
        """The latest window of each recent scorer (alarm rate, score CUSUM, per-feature drift ratio: above 1 is
        drift) and the recent events of ``name``, from the store."""
        self.store.get(name)
        windows = []
        for run in self.store.monitoring_runs(name):
            metrics = {k.removeprefix("window."): v for k, v in run.metrics.items() if k.startswith("window.")}
            if not metrics:
                continue
            drift = {k.removeprefix("drift_ratio."): v for k, v in metrics.items() if k.startswith("drift_ratio.")}
            windows.append(
                {"run_id": run.run_id, "status": run.status, "started": run.start_time, "drift": drift}
                | {k: v for k, v in metrics.items() if not k.startswith("drift_ratio.")}
            )
        from framework.monitoring import json_safe

        return json_safe({"experiment": name, "windows": windows, "events": self.store.recent_events(name, limit)})

    def _datastream(self) -> Any:
        stream = self._plugins.get("datastream")
        if stream is None:
            raise PluginError("no datastream plugin is registered; enable one in the config", plugin_type="datastream")
        return stream

    def stream(self, name: str, stop: threading.Event | None = None, **options: Any) -> Any:
        """Score ``<name>.input`` into ``<name>.predictions`` until ``stop`` is set (or SIGINT/SIGTERM).

        ``options`` go to ``StreamScorer`` (batch_size, batch_timeout_ms, output_format, ...). Returns its stats.
        """
        from framework.streaming import StreamScorer, stop_on_signals

        scorer = StreamScorer(self, self._datastream(), name, **options)
        with stop_on_signals(stop or threading.Event()) as event:
            return scorer.run(event)

    def publish_records(
        self, name: str, data: DataInput, *, batch_size: int = 100, fmt: str = "records", on_progress: Any = None
    ) -> list[str]:
        """Publish ``data`` to ``<name>.input`` in messages of ``batch_size`` records; return the message ids.

        ``fmt``: "records", "split" or "arrow" (see ``framework.records``). See ``streaming.publish_records``.
        """
        from framework.streaming import publish_records

        return publish_records(self._datastream(), name, data, batch_size=batch_size, fmt=fmt, on_progress=on_progress)

    def watch_predictions(
        self, name: str, stop: threading.Event, *, alarms_only: bool = False
    ) -> Iterator[pd.DataFrame]:
        """Yield ``name``'s new prediction messages as frames until ``stop`` is set, without taking them from
        ``<name>.predictions`` (``experimenthub tail``, the dashboard). See ``streaming.watch_predictions``."""
        from framework.streaming import watch_predictions

        return watch_predictions(self._datastream(), name, stop, alarms_only=alarms_only)


def _utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Mark naive timestamp columns (experiments work in naive UTC) as UTC, so every output keeps the zone."""
    import pandas as pd

    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_datetime64_dtype(values) and getattr(values.dt, "tz", None) is None:
            frame[column] = values.dt.tz_localize("UTC")
    return frame
