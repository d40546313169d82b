"""pydantic models for ``hub_config.yaml`` and experiment spec files, with ``${ENV}`` and ``${file:...}`` references.

In any string value, ``${VAR}`` and ``${VAR:-default}`` read the environment, and ``${file:/run/secrets/name}``
reads that file with its trailing newline stripped (as Docker and Kubernetes mount secrets; a relative path is
relative to the config file's folder).

Errors name the file, the line, the dotted field path and the reason, never the offending value
(it may be a password)::

    hub_config.yaml:6: plugins.taskqueue.enabled: Input should be a valid boolean, unable to interpret input
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from framework.errors import ConfigError, RedactFilter

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_CONFIG_FILE",
    "DRIFT_METHODS",
    "METRIC_TRIGGERS",
    "MODEL_PARAM_RANGES",
    "REFUSED_MODEL_PARAMS",
    "AlertSettings",
    "ApiSettings",
    "DriftSettings",
    "ExperimentEntry",
    "ExperimentSpec",
    "GlobalSettings",
    "HubConfig",
    "MetricTrigger",
    "ModelSpec",
    "MonitoringSpec",
    "PluginEntry",
    "PluginsConfig",
    "RetrainPolicy",
    "config_source",
    "configure_logging",
    "default_config",
    "load_config",
    "load_yaml_model",
    "parse_yaml_model",
    "state_dir",
    "validate_mapping",
    "validation_error",
]

DEFAULT_CONFIG_FILE = "hub_config.yaml"
EMBEDDED_ENV = "EXPERIMENTHUB_EMBEDDED"
API_KEY_ENV = "EXPERIMENTHUB_API_KEY"  # the REST API's key when global.api_key is unset
SUPPORTED_MAJOR_VERSION = "1"
_REF = re.compile(r"\$\{(?:file:(?P<file>[^}]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?)\}")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_IDENTIFIER_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"

Model = TypeVar("Model", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ApiSettings(_Strict):
    """The REST API's limits (``global.api``)."""

    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="bodies above this get 413 (8 MiB)")
    request_timeout: float = Field(
        default=60.0, gt=0, description="a request still running after this many seconds gets 503"
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="a client that has not sent its request line and headers by then is dropped"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the API from a browser; empty: CORS off"
    )


class GlobalSettings(_Strict):
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    environment: Literal["development", "production"] = Field(
        default="development", description="production refuses unsafe settings (see README: Configuration)"
    )
    allow_embedded: bool = Field(default=False, description="production: allow the SQLite store and local queue")
    allow_insecure_transport: bool = Field(
        default=False, description="production: allow plain-text MLflow/broker URLs to non-local hosts"
    )
    api: ApiSettings = Field(default_factory=ApiSettings)
    state_dir: str | None = Field(default=None, description="Hub state folder (default: $EXPERIMENTHUB_HOME)")
    api_key: str | None = Field(default=None, description="Bearer token required by the REST API", repr=False)

    @pydantic.field_validator("log_level", "environment", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class PluginEntry(_Strict):
    enabled: bool = True
    type: str = Field(min_length=1, description="alias, entry-point name, or 'package.module:Class'")
    config: dict[str, Any] = Field(default_factory=dict)


class PluginsConfig(_Strict):
    mlops: PluginEntry | None = None
    datastream: PluginEntry | None = None
    taskqueue: PluginEntry | None = None

    def enabled(self) -> dict[str, PluginEntry]:
        """Enabled entries in registration order: mlops, datastream, taskqueue."""
        entries = {"mlops": self.mlops, "datastream": self.datastream, "taskqueue": self.taskqueue}
        return {ptype: entry for ptype, entry in entries.items() if entry is not None and entry.enabled}


class ExperimentEntry(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
    module: str = Field(pattern=_IDENTIFIER_PATH)
    class_name: str = Field(alias="class", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    enabled: bool = True


class HubConfig(_Strict):
    version: str
    global_: GlobalSettings = Field(default_factory=GlobalSettings, alias="global")
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    experiments: list[ExperimentEntry] = Field(default_factory=list)
    _origin: tuple[str, yaml.Node] | None = pydantic.PrivateAttr(default=None)

    @pydantic.field_validator("version", mode="before")
    @classmethod
    def _check_version(cls, value: Any) -> str:
        text = str(value)
        if text.split(".")[0] != SUPPORTED_MAJOR_VERSION:
            raise ValueError(f"unsupported config version; this hub reads version {SUPPORTED_MAJOR_VERSION}.x")
        return text

    @pydantic.field_validator("experiments")
    @classmethod
    def _unique_names(cls, entries: list[ExperimentEntry]) -> list[ExperimentEntry]:
        names = [e.name for e in entries]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"experiment type names must be unique; repeated: {', '.join(dupes)}")
        return entries

    def experiment_types(self) -> dict[str, ExperimentEntry]:
        """Enabled experiment types by name: the only ones the hub will ever instantiate."""
        return {e.name: e for e in self.experiments if e.enabled}

    @property
    def source(self) -> str | None:
        """The file this config was read from (None for the embedded default or an in-memory config)."""
        return self._origin[0] if self._origin else None

    def error(self, reason: str, loc: tuple) -> ConfigError:
        """A ``ConfigError`` at ``loc`` (e.g. ``("plugins", "mlops", "type")``) with the file and line it came from."""
        source, root = self._origin or (None, None)
        return ConfigError(reason, source=source, line=_line_of(root, loc), field=_dotted(loc) or None)

    def validation_error(self, exc: pydantic.ValidationError, prefix: tuple, keys: Sequence[str] = ()) -> ConfigError:
        """``exc`` raised while validating the part of this config at ``prefix``, located in the file."""
        source, root = self._origin or (None, None)
        return validation_error(exc, source=source, root=root, prefix=prefix, keys=keys)


def state_dir(config: HubConfig | None = None) -> Path:
    """The hub's state folder: ``global.state_dir``, else ``$EXPERIMENTHUB_HOME``, else ``./.experimenthub``."""
    configured = config.global_.state_dir if config is not None else None
    return Path(configured or os.environ.get("EXPERIMENTHUB_HOME") or ".experimenthub").expanduser().resolve()


def default_config() -> HubConfig:
    """The embedded default: MLflow on SQLite and a local durable queue under the state folder; no task queue."""
    home = state_dir()
    return HubConfig.model_validate(
        {
            "version": "1.0",
            "global": {"state_dir": str(home)},
            "plugins": {
                "mlops": {"type": "mlflow", "config": {"mlflow_uri": f"sqlite:///{home / 'mlflow.db'}"}},
                "datastream": {"type": "local", "config": {"path": str(home / "stream.db")}},
                "taskqueue": {"enabled": False, "type": "celery", "config": {}},
            },
            "experiments": [
                {"name": "time_series", "module": "framework.TimeSeriesAnalysis", "class": "TimeSeriesExperiment"},
                {"name": "fault_detection", "module": "framework.FaultDetection", "class": "FaultDetectionExperiment"},
            ],
        }
    )


def config_source(path: str | Path | None = None) -> Path | None:
    """The file ``load_config(path)`` reads, or None for the embedded default.

    An explicit ``path`` wins. Otherwise ``$EXPERIMENTHUB_EMBEDDED=1`` forces the embedded default, and without it
    ``./hub_config.yaml`` is used when it exists.
    """
    if path is not None:
        return Path(path)
    if os.environ.get(EMBEDDED_ENV, "").strip().lower() not in ("", "0", "false", "no", "off"):
        return None
    return Path(DEFAULT_CONFIG_FILE) if Path(DEFAULT_CONFIG_FILE).is_file() else None


def load_config(path: str | Path | None = None) -> HubConfig:
    """Load ``path``; with None, the embedded default under ``$EXPERIMENTHUB_EMBEDDED=1``, else
    ``./hub_config.yaml`` if it exists, else the embedded default (see ``config_source``)."""
    path = config_source(path)
    if path is None:
        return default_config()
    return load_yaml_model(HubConfig, path)


def configure_logging(config: HubConfig, *, verbose: bool = False) -> None:
    """For entry points (CLI, API server, worker), never called by library code: a stderr handler if the root
    logger has none, ``framework`` loggers at ``global.log_level`` (debug with ``verbose``), secrets masked."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger("framework").setLevel("DEBUG" if verbose else config.global_.log_level.upper())
    for handler in root.handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())


def load_yaml_model(model: type[Model], path: str | Path) -> Model:
    """Read a YAML file into ``model``; every failure is a ``ConfigError`` naming file, line and field."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file ({exc.strerror or exc})", source=source) from None
    return parse_yaml_model(model, text, source=source)


def parse_yaml_model(model: type[Model], text: str, *, source: str = "<string>") -> Model:
    """Parse YAML ``text`` into ``model`` (see ``load_yaml_model``)."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    if not isinstance(data, Mapping):
        raise ConfigError("expected a mapping at the top level", source=source, line=1)
    data = _interpolate(data, (), root, source)
    try:
        result = model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise validation_error(exc, source=source, root=root) from None
    if isinstance(result, HubConfig):
        result._origin = (source, root)
    return result


def validate_mapping(model: type[Model], data: Any, *, source: str = "spec") -> Model:
    """Validate an in-memory mapping into ``model`` with the same error shape (no line numbers)."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise validation_error(exc, source=source) from None


def validation_error(
    exc: pydantic.ValidationError,
    *,
    source: str | None,
    root: yaml.Node | None = None,
    prefix: tuple = (),
    keys: Sequence[str] = (),
) -> ConfigError:
    """One ConfigError for all of pydantic's errors (never their input values, which may be passwords): the first
    names line and field, the others follow. ``prefix`` is where the validated part sits in the file; ``keys``, the
    accepted top-level keys, give an unknown one a "did you mean" hint."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = (*prefix, *err["loc"])
        reason = _reason(err)
        if err["type"] == "extra_forbidden" and keys and len(err["loc"]) == 1:
            close = difflib.get_close_matches(str(err["loc"][0]), keys, n=1)
            reason += f"; did you mean {close[0]!r}?" if close else f"; accepted keys: {', '.join(keys)}"
        problems.append(ConfigError(reason, source=source, line=_line_of(root, loc), field=_dotted(loc) or None))
    return ConfigError.combine(problems)


def _reason(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _dotted(loc: tuple) -> str:
    return ".".join("global" if part == "global_" else str(part) for part in loc)


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at ``loc``, or of its deepest existing parent."""
    if node is None:
        return None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            kids = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
        elif isinstance(node, yaml.SequenceNode):
            kids = dict(enumerate(node.value))
        else:
            kids = {}
        if key not in kids:
            break
        node = kids[key]
    return node.start_mark.line + 1


def _interpolate(value: Any, loc: tuple, root: yaml.Node, source: str) -> Any:
    """Replace ``${VAR}``, ``${VAR:-default}`` and ``${file:path}`` in every string value (in one pass)."""
    if isinstance(value, Mapping):
        return {k: _interpolate(v, (*loc, k), root, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), root, source) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if (file := match.group("file")) is not None:
            secret = Path(file).expanduser()
            if not secret.is_absolute() and Path(source).is_file():  # relative to the config file's folder
                secret = Path(source).parent / secret
            try:
                return secret.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise ConfigError(
                    f"cannot read secret file {file} ({reason})",
                    source=source,
                    line=_line_of(root, loc),
                    field=_dotted(loc),
                ) from None
        name, default = match.group("name"), match.group("default")
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)",
            source=source,
            line=_line_of(root, loc),
            field=_dotted(loc),
        )

    return _REF.sub(substitute, value)


# Hyperparameters that set what one training costs, with the integer range a spec may ask for (whichever model
# takes them); the model's own checks still apply inside the range.
MODEL_PARAM_RANGES: dict[str, tuple[int, int]] = {
    "n_estimators": (1, 1000),
    "n_neighbors": (1, 1000),
    "n_components": (1, 1000),
    "lags": (0, 100),
    "max_iter": (1, 10_000),
    "max_train_rows": (2, 5_000_000),
    "seasonal": (3, 10_001),
}
# Hyperparameters a spec may not set, and why.
REFUSED_MODEL_PARAMS: dict[str, str] = {
    "n_jobs": "parallelism is the server's to choose, not a spec's (a shared server has few cores)",
}


class ModelSpec(_Strict):
    """Which model from the experiment type's catalog, and its hyperparameters.

    Costly hyperparameters are bounded (``MODEL_PARAM_RANGES``) and a few are refused (``REFUSED_MODEL_PARAMS``).
    """

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @pydantic.field_validator("params")
    @classmethod
    def _bounded(cls, params: dict[str, Any]) -> dict[str, Any]:
        for key, value in params.items():
            if key in REFUSED_MODEL_PARAMS:
                raise ValueError(f"{key}: not accepted from a spec; {REFUSED_MODEL_PARAMS[key]}")
            if key in MODEL_PARAM_RANGES and value is not None and value != "auto":  # "auto": chosen in fit
                low, high = MODEL_PARAM_RANGES[key]
                if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                    raise ValueError(f"{key}: must be an integer from {low} to {high}")
        return params


DRIFT_METHODS = ("wasserstein", "psi", "ks")
METRIC_TRIGGERS: dict[str, str] = {"mase": "above", "coverage": "below"}  # forecast metric -> the bad direction


class DriftSettings(_Strict):
    """Per-feature drift: which statistic, on which features (thresholds are calibrated on the reference)."""

    method: Literal["wasserstein", "psi", "ks"] = "wasserstein"
    features: Literal["all"] | list[str] = Field(default="all", description="'all' or a list of feature names")

    @pydantic.field_validator("features")
    @classmethod
    def _some_features(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("give 'all' or a non-empty list of distinct feature names")
        return value


class AlertSettings(_Strict):
    """Which window statistics raise an alert event."""

    drift: bool = True
    alarm_rate_above: float | None = Field(
        default=None, gt=0, lt=1, description="default: the model's target alarm rate plus its sampling margin"
    )


class MonitoringSpec(_Strict):
    """How the stream scorer watches the data: evaluation window, drift statistic, alerts."""

    window: int = Field(default=2000, ge=50, le=10_000_000, description="rows per evaluation window")
    drift: DriftSettings = Field(default_factory=DriftSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)


class MetricTrigger(_Strict):
    """Retrain when a forecast metric over the last ``over_rows`` rows with actuals crosses its bound."""

    metric: Literal["mase", "coverage"]
    above: float | None = Field(default=None, gt=0, description="for mase: retrain when the rolling value is above")
    below: float | None = Field(default=None, gt=0, lt=1, description="for coverage: retrain when below")
    over_rows: int = Field(default=500, ge=10, le=10_000_000)

    @pydantic.model_validator(mode="after")
    def _one_bound(self) -> MetricTrigger:
        direction = METRIC_TRIGGERS[self.metric]
        other = "below" if direction == "above" else "above"
        if getattr(self, other) is not None:
            raise ValueError(f"{self.metric} is bad when it is {direction} a bound; give '{direction}', not '{other}'")
        if getattr(self, direction) is None:
            raise ValueError(f"give the bound: {{metric: {self.metric}, {direction}: ...}}")
        return self

    @property
    def bound(self) -> float:
        return float(self.above if self.above is not None else self.below)  # type: ignore[arg-type]


class RetrainPolicy(_Strict):
    """When the hub retrains from a stream, and on which rows (see README, "Retraining")."""

    window: int | None = Field(default=None, gt=0, description="train on the most recent N rows (default: all)")
    every_n_rows: int | None = Field(default=None, gt=0, description="the stream submits a retrain job this often")
    on_drift: bool | None = Field(
        default=None, description="retrain on benign drift (default: off for fault detection, on for forecasting)"
    )
    on_metric: MetricTrigger | None = None
    cooldown_rows: int = Field(default=10_000, ge=0, description="rows after a retrain before drift/metric triggers")


class ExperimentSpec(_Strict):
    """Fields every experiment spec has. Experiment types extend it; unknown keys are refused.

    ``monitoring_kind`` (a class attribute of each type's spec) picks the per-type monitoring defaults:
    ``"detection"`` (drift during an alarm episode is a fault; ``on_drift`` off) or ``"forecast"``
    (``on_drift`` on; ``on_metric`` allowed).
    """

    monitoring_kind: ClassVar[Literal["detection", "forecast"]] = "detection"

    model: ModelSpec
    features: list[str] | None = Field(default=None, description="default: every numeric column but timestamp/label")
    timestamp: str | None = None
    label: str | None = Field(default=None, description="used by evaluate() only, never by fit()")
    retrain: RetrainPolicy = Field(default_factory=RetrainPolicy, validate_default=True)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)

    @pydantic.field_validator("features")
    @classmethod
    def _distinct(cls, features: list[str] | None) -> list[str] | None:
        if features is not None and (repeated := sorted({f for f in features if features.count(f) > 1})):
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return features

    @pydantic.field_validator("retrain")
    @classmethod
    def _retrain_defaults(cls, policy: RetrainPolicy) -> RetrainPolicy:
        if policy.on_metric is not None and cls.monitoring_kind != "forecast":
            raise ValueError("on_metric needs actuals for forecasts: only forecasting experiments have it")
        if policy.on_drift is None:
            return policy.model_copy(update={"on_drift": cls.monitoring_kind == "forecast"})
        return policy

    @pydantic.field_validator("monitoring")
    @classmethod
    def _drift_features_known(cls, monitoring: MonitoringSpec, info: pydantic.ValidationInfo) -> MonitoringSpec:
        wanted, features = monitoring.drift.features, info.data.get("features")
        if isinstance(wanted, list) and features and (unknown := sorted(set(wanted) - set(features))):
            raise ValueError(f"drift.features names column(s) not in features: {unknown}")
        return monitoring
