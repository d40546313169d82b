"""``MLflowPlugin``: the MLOps plugin on MLflow, through a per-plugin ``MlflowClient`` (no fluent "active run").

>>> plugin = MLflowPlugin(mlflow_uri="http://localhost:5000")     # or "sqlite:///<state dir>/mlflow.db"
>>> plugin.initialize()                                           # PluginUnavailable if the server is down
>>> with plugin.run("fault_detection") as run_id:                 # FINISHED, or FAILED if the body raises
...     plugin.log_params(run_id, {"n_components": 3})
...     plugin.log_metrics(run_id, {"f1": 0.93, "precision": 0.97})
...     uri = plugin.log_model(run_id, fitted_experiment)
>>> version = plugin.register_model("fault_detection", uri, run_id=run_id)
>>> plugin.set_alias("fault_detection", "champion", version.version)
>>> model = plugin.load_model("fault_detection")                  # the original Python object

Backends. ``http(s)://`` talks to a tracking server. ``sqlite:///path/mlflow.db`` is embedded (no server); its
artifacts live in ``<db dir>/artifacts``, never in the working directory. Another ``artifact_location`` may be set.

Timeouts. Each call runs with this plugin's HTTP settings (timeout, retries, backoff) through
``framework.plugins.mlflow_settings``, which leaves the process environment alone. Health checks and the probe in
``initialize`` do not go through MLflow at all: they are direct ``httpx`` calls
with their own short deadline (``health_timeout``).

Models and the trust boundary. ``log_model`` stores any picklable object with ``predict(DataFrame)`` as an MLflow
pyfunc model: ``PyfuncModelWrapper`` holds the object and MLflow serializes it with cloudpickle, which keeps arbitrary
fitted Python objects (scikit-learn, statsmodels, the hub's own classes) without per-library flavours. Unpickling runs
code, so ``load_model`` only loads versions whose source is a run of this plugin's own store (``runs:/<id>/<path>``),
downloaded through this plugin's client; it never loads a path or URI given by a caller. Whoever can write to the
tracking store can run code in the hub: protect it like the code itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import mlflow.pyfunc
import pandas as pd
import requests
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

from framework.errors import (
    ConflictError,
    DataValidationError,
    ExperimentNotFound,
    HubError,
    PluginError,
    PluginUnavailable,
    is_secret_key,
    redact,
    redact_details,
)
from framework.plugins.mlflow_settings import ClientSettings
from framework.plugins.mlflow_settings import active as active_settings
from framework.plugins.mlops import MLOpsPlugin, ModelVersion, RunRecord, RunStatus
from framework.plugins.settings import MLflowConfig, validated_by
from framework.plugins.tls import tls_failure

__all__ = ["MLflowPlugin", "PyfuncModelWrapper"]

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"
_TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
_RUNS_SOURCE = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]+)/(?P<path>.+)$")
_MODEL_REQUIREMENTS = ("mlflow", "cloudpickle", "pandas", "numpy", "scikit-learn")


# --- the pyfunc wrapper -------------------------------------------------------------------------------------------


class _ExpectedMlflowNoise(logging.Filter):
    """Drops MLflow messages this plugin causes on purpose (documented above), and schema-migration chatter."""

    EXPECTED = (
        "causes it to be serialized using CloudPickle",
        "Failed to infer model signature",
        "Creating initial MLflow database tables",
        "Updating database tables",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.EXPECTED)


_NOISE_FILTER = _ExpectedMlflowNoise()


def _quiet_expected_mlflow_messages() -> None:
    """Install the filter once on the loggers that emit those messages."""
    for name in ("mlflow.pyfunc", "mlflow.models.signature", "mlflow.store.db.utils"):
        logger = logging.getLogger(name)
        if _NOISE_FILTER not in logger.filters:
            logger.addFilter(_NOISE_FILTER)


class PyfuncModelWrapper(mlflow.pyfunc.PythonModel):
    """Holds a fitted object with ``predict(DataFrame)``; MLflow cloudpickles it. Stored models refer to this name."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        """Serve through MLflow (``mlflow models serve``, ``pyfunc.load_model``): delegate to the wrapped object."""
        return self.model.predict(model_input)


# --- helpers ------------------------------------------------------------------------------------------------------


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _masked_value(key: str, value: Any, limit: int) -> str:
    """Stringify, mask secrets (by key name and by content) and truncate to MLflow's length limit.

    A JSON object (the hub's spec tag) is masked value by value, so what is stored is still valid JSON."""
    text = str(value)
    if is_secret_key(key):
        return "***"
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return json.dumps(redact_details(parsed), sort_keys=True)[:limit]
    return redact(text)[:limit]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_unavailable(exc: BaseException) -> bool:
    """True when the chain shows a network failure or a 503 (the service is down, not the request wrong)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.RequestException | httpx.TransportError | ConnectionError | TimeoutError):
            return True
        if isinstance(seen, MlflowException) and seen.error_code == "TEMPORARILY_UNAVAILABLE":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _translate(action: str, uri: str, exc: BaseException) -> HubError:
    reason = redact(f"{action} failed at {uri}: {getattr(exc, 'message', None) or exc}")
    if isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return ExperimentNotFound(reason)
    if _is_unavailable(exc):
        return PluginUnavailable(reason, plugin_type="mlops")
    return PluginError(reason, plugin_type="mlops")


def _model_requirements() -> list[str]:
    pins = []
    for name in _MODEL_REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            pins.append(f"{name}=={metadata.version(name)}")
    return pins


# --- the plugin ---------------------------------------------------------------------------------------------------


class MLflowPlugin(MLOpsPlugin):
    """Runs, params, metrics, artifacts, figures and model versions in MLflow.

    Parameters
    ----------
    mlflow_uri:
        ``http(s)://[user:password@]host:port`` for a tracking server, or ``sqlite:///path/mlflow.db`` (embedded).
        Default: ``sqlite:///<hub state dir>/mlflow.db``.
    registry_uri:
        Model registry, if not the tracking store.
    artifact_location:
        Artifact root for experiments this plugin creates. Default: the server's choice; ``<db dir>/artifacts``
        for SQLite.
    request_timeout:
        Read timeout (s) of each MLflow HTTP request made by this plugin (default 10). The REST API also bounds
        each request's hub calls as a whole (``create_app(hub_deadline_s=10)``): a hung server costs seconds.
    max_retries, backoff_factor:
        Retries of a failed MLflow HTTP request (MLflow's own default stalls about four minutes). These three
        settings replace ``MLFLOW_HTTP_REQUEST_*`` for this plugin's calls only.
    health_timeout:
        Deadline (s) of ``health_check`` and of the probe in ``initialize``; also the HTTP connect timeout.
    username, password:
        Credentials of a server run with ``--app-name basic-auth`` (HTTP basic auth; use https off the host). A
        refused login is a ``PluginError`` naming the user, never the password.
    ca_bundle, client_cert:
        For an https server: the PEM CA bundle that signed its certificate, and a PEM client certificate with its
        key for servers that require one.
    """

    plugin_type = "mlops"
    config_model = MLflowConfig

    @validated_by(MLflowConfig)
    def __init__(
        self,
        mlflow_uri: str | None = None,
        registry_uri: str | None = None,
        artifact_location: str | None = None,
        request_timeout: float = 10.0,
        max_retries: int = 2,
        backoff_factor: float = 1.0,
        health_timeout: float = 3.0,
        username: str | None = None,
        password: str | None = None,
        ca_bundle: str | None = None,
        client_cert: str | None = None,
    ) -> None:
        if mlflow_uri is None:
            from framework.config import state_dir

            mlflow_uri = f"sqlite:///{state_dir() / 'mlflow.db'}"
        scheme = urlsplit(mlflow_uri).scheme
        self.mlflow_uri = mlflow_uri
        self.registry_uri = registry_uri
        self.request_timeout = request_timeout
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.health_timeout = health_timeout
        self.masked_uri = redact(mlflow_uri)
        self.is_server = scheme in ("http", "https")
        parts = urlsplit(mlflow_uri)
        # httpx logs request URLs: probe without userinfo, and send it as basic auth instead
        self._probe_base = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl().rstrip("/")
        self._probe_auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        if username is not None:
            self._probe_auth = (username, password or "")
        self.username = username if username is not None else (self._probe_auth or (None,))[0]
        self.ca_bundle, self.client_cert = ca_bundle, client_cert
        self._db_path = (
            None if self.is_server else Path(unquote(mlflow_uri[len("sqlite:///") :])).expanduser().resolve()
        )
        self._tracking_uri = mlflow_uri if self._db_path is None else f"sqlite:///{self._db_path}"
        if username is not None and self.is_server:
            # in the URI, not only in MLflow's per-call settings: MLflow downloads artifacts in its own threads,
            # where those settings do not reach; requests sends URL userinfo as basic auth, and it is never logged
            userinfo = f"{quote(username, safe='')}:{quote(password or '', safe='')}"
            netloc = f"{userinfo}@{parts.netloc.rpartition('@')[2]}"
            self._tracking_uri = parts._replace(netloc=netloc).geturl()
        if artifact_location is None and self._db_path is not None:
            artifact_location = (self._db_path.parent / "artifacts").as_uri()
        self.artifact_location = artifact_location
        self._settings = ClientSettings(
            (health_timeout, request_timeout),
            max_retries,
            backoff_factor,
            server_cert_path=ca_bundle,
            client_cert_path=client_cert,
        )
        self._client: MlflowClient | None = None
        self._open_runs: set[str] = set()
        self._missed_ends: dict[str, RunStatus] = {}  # runs whose end the store missed (away): retried later
        self._experiment_names: dict[str, str] = {}  # experiment id -> name, for RunRecord
        self._schema_head: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MLflowPlugin(mlflow_uri={self.masked_uri!r})"

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Connect: probe the server (or open and migrate the SQLite store). Idempotent."""
        if self._client is not None:
            return
        _quiet_expected_mlflow_messages()
        if self.is_server:
            reachable, details = self._probe_server()
            if details["status"] in ("login refused", "TLS failed"):  # retrying would not help
                raise PluginError(f"MLflow server {self.masked_uri}: {details['error']}", plugin_type="mlops")
            if not reachable:
                raise PluginUnavailable(
                    f"MLflow server {self.masked_uri} is unreachable: {details['error']}", plugin_type="mlops"
                )
        else:
            assert self._db_path is not None
            try:
                self._db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise PluginError(f"cannot create the MLflow store folder: {exc}", plugin_type="mlops") from exc
        try:
            with active_settings(self._settings):
                client = MlflowClient(tracking_uri=self._tracking_uri, registry_uri=self.registry_uri)
                client.search_experiments(max_results=1)  # SQLite: creates the schema on first use
        except (MlflowException, requests.RequestException, OSError) as exc:
            raise _translate("initialize", self.masked_uri, exc) from exc
        self._client = client
        log.info("MLflow plugin connected to %s", self.masked_uri)

    def shutdown(self) -> None:
        """End (FAILED) every run this plugin started that is still open, then drop the client. Idempotent.

        Nothing is buffered: every log call is written synchronously, so there is nothing else to flush.
        """
        if self._client is None:
            return
        with self._lock:
            open_runs = sorted(self._open_runs)
            missed = dict(self._missed_ends)
        for run_id in open_runs:
            status = missed.get(run_id, "FAILED")
            try:
                self.end_run(run_id, status)
                log.warning("run %s was still open at shutdown; ended as %s", run_id, status)
            except HubError as exc:
                log.warning("could not end run %s at shutdown: %s", run_id, exc)
        self._client = None
        log.info("MLflow plugin disconnected from %s", self.masked_uri)

    def health_check(self) -> tuple[bool, dict]:
        """``(healthy, details)`` with status, masked URI and latency; never raises."""
        try:
            if not self.is_server:
                return self._sqlite_health()
            reachable, details = self._probe_server()
            if reachable:
                details["status"] = "connected" if self._client is not None else "not initialized"
            return reachable and self._client is not None, details
        except Exception as exc:  # the contract: health_check never raises
            return False, {"status": "error", "uri": self.masked_uri, "error": redact(f"{type(exc).__name__}: {exc}")}

    def _probe_server(self) -> tuple[bool, dict]:
        """``GET /health``, ``GET /version`` and one cheap API call, all within ``health_timeout`` overall."""
        details: dict[str, Any] = {"status": "unreachable", "uri": self.masked_uri, "backend": "server"}
        base = self._probe_base
        start = time.monotonic()
        deadline = start + self.health_timeout

        def remaining() -> float:
            return max(deadline - time.monotonic(), 0.05)

        try:
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True
            )
            client = httpx.Client(
                timeout=self.health_timeout,
                auth=self._probe_auth,
                trust_env=False,
                verify=verify,
                cert=self.client_cert,
            )
            with client as http:
                http.get(f"{base}/health", timeout=remaining()).raise_for_status()
                version = http.get(f"{base}/version", timeout=remaining())
                details["server_version"] = version.text.strip() if version.is_success else None
                search = http.post(
                    f"{base}/api/2.0/mlflow/experiments/search", json={"max_results": 1}, timeout=remaining()
                )
                search.raise_for_status()
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            if code in (401, 403):
                details["status"] = "login refused"
                who = f"user {self.username!r}" if self.username else "no credentials (set username and password)"
                details["error"] = f"HTTP {code}: the server refused {who}"
            else:
                details["error"] = redact(f"{type(exc).__name__}: {exc}")
            details["latency_ms"] = round((time.monotonic() - start) * 1000, 1)
            return False, details
        except httpx.HTTPError as exc:
            details["error"] = redact(f"{type(exc).__name__}: {exc}")
            if (problem := tls_failure(exc)) is not None:
                details["status"] = "TLS failed"
                details["error"] = f"TLS handshake failed: {problem}; check ca_bundle and client_cert"
            details["latency_ms"] = round((time.monotonic() - start) * 1000, 1)
            return False, details
        details["status"] = "reachable"
        details["latency_ms"] = round((time.monotonic() - start) * 1000, 1)
        return True, details

    def _sqlite_health(self) -> tuple[bool, dict]:
        """The database opens read-only and its alembic revision is MLflow's current head."""
        assert self._db_path is not None
        details: dict[str, Any] = {"status": "unavailable", "uri": self.masked_uri, "backend": "sqlite"}
        if self._client is None:
            details["status"] = "not initialized"
            return False, details
        start = time.monotonic()
        if self._schema_head is None:
            from mlflow.store.db.utils import _get_latest_schema_revision

            self._schema_head = _get_latest_schema_revision()
        try:
            with contextlib.closing(
                sqlite3.connect(f"{self._db_path.as_uri()}?mode=ro", uri=True, timeout=self.health_timeout)
            ) as db:
                row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error as exc:
            details["error"] = redact(f"{type(exc).__name__}: {exc}")
            return False, details
        revision = row[0] if row else None
        details.update(
            schema_revision=revision,
            latency_ms=round((time.monotonic() - start) * 1000, 1),
            artifact_location=self.artifact_location,
        )
        if revision != self._schema_head:
            details.update(status="schema out of date", expected_revision=self._schema_head)
            return False, details
        details["status"] = "connected"
        return True, details

    @contextlib.contextmanager
    def _mlflow(self, action: str) -> Iterator[MlflowClient]:
        """Yield the client with this plugin's HTTP settings active; translate MLflow errors to hub errors."""
        client = self._client
        if client is None:
            raise PluginError(f"{self!r} is not initialized; call initialize() first", plugin_type="mlops")
        try:
            with active_settings(self._settings):
                yield client
        except (MlflowException, requests.RequestException, OSError) as exc:
            raise _translate(action, self.masked_uri, exc) from exc

    # --- experiments ----------------------------------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        """Create the experiment, or return the id of the existing one (idempotent; given tags are set)."""
        with self._mlflow(f"create experiment {name!r}") as client:
            found = client.get_experiment_by_name(name)
            if found is None:
                try:
                    experiment_id = client.create_experiment(
                        name, artifact_location=self.artifact_location, tags=self._clean_tags(tags)
                    )
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # a concurrent create won the race
                        raise
                    found = client.get_experiment_by_name(name)
                else:
                    self._experiment_names[experiment_id] = name
                    return experiment_id
            if found is None or found.lifecycle_stage != "active":
                raise PluginError(f"experiment {name!r} exists but is deleted", plugin_type="mlops")
            for key, value in self._clean_tags(tags).items():
                client.set_experiment_tag(found.experiment_id, key, value)
            self._experiment_names[found.experiment_id] = name
            return found.experiment_id

    def get_experiment(self, name: str) -> dict[str, Any] | None:
        """``{"id", "name", "tags"}`` of an active experiment, or None."""
        with self._mlflow(f"get experiment {name!r}") as client:
            found = client.get_experiment_by_name(name)
        if found is None or found.lifecycle_stage != "active":
            return None
        return {"id": found.experiment_id, "name": found.name, "tags": dict(found.tags)}

    def list_experiments(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Active experiments (MLflow's ``Default`` excluded), optionally only those carrying the tag key ``tag``."""
        rows: list[dict[str, Any]] = []
        token = None
        with self._mlflow("list experiments") as client:
            while True:
                page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, page_token=token)
                for exp in page:
                    if exp.experiment_id != "0" and (tag is None or tag in exp.tags):
                        rows.append({"id": exp.experiment_id, "name": exp.name, "tags": dict(exp.tags)})
                token = page.token
                if not token:
                    return sorted(rows, key=lambda row: row["name"])

    def set_experiment_tags(self, name: str, tags: Mapping[str, str]) -> None:
        experiment_id = self._experiment_id(name)
        with self._mlflow(f"tag experiment {name!r}") as client:
            for key, value in self._clean_tags(tags).items():
                client.set_experiment_tag(experiment_id, key, value)

    def delete_experiment(self, name: str) -> None:
        """Delete the experiment (renamed first, so the name can be used again) and its registered model."""
        with self._mlflow(f"delete experiment {name!r}") as client:
            found = client.get_experiment_by_name(name)
            if found is not None and found.lifecycle_stage == "active":
                client.rename_experiment(found.experiment_id, f"{name}.deleted.{found.experiment_id}.{_now_ms()}")
                client.delete_experiment(found.experiment_id)
                self._experiment_names.pop(found.experiment_id, None)
            try:
                client.delete_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        if found is None:
            log.info("delete_experiment: no experiment %r in %s", name, self.masked_uri)

    def _experiment_id(self, name: str) -> str:
        found = self.get_experiment(name)
        if found is None:
            raise ExperimentNotFound(f"no experiment {name!r} in {self.masked_uri}")
        return found["id"]

    # --- runs -----------------------------------------------------------------------------------------------------

    def start_run(self, experiment: str, run_name: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Start a run in ``experiment`` (created if needed) and return its id; the run name defaults to it.

        Ends the store missed while it was away are sent first (each with the status it was given)."""
        self._send_missed_ends()
        experiment_id = self.create_experiment(experiment)
        with self._mlflow(f"start a run in {experiment!r}") as client:
            run = client.create_run(experiment_id, run_name=run_name or experiment, tags=self._clean_tags(tags))
        with self._lock:
            self._open_runs.add(run.info.run_id)
        return run.info.run_id

    def delete_run(self, run_id: str) -> None:
        """Delete a run (MLflow marks it deleted; its artifacts go with the store's garbage collection)."""
        with self._mlflow(f"delete run {run_id}") as client:
            client.delete_run(run_id)

    def end_run(self, run_id: str, status: RunStatus = "FINISHED") -> None:
        """End a run as FINISHED, FAILED or KILLED."""
        if status not in _TERMINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(_TERMINAL_STATUSES)}, got {status!r}")
        try:
            with self._mlflow(f"end run {run_id}") as client:
                client.set_terminated(run_id, status=status)
        except PluginUnavailable:
            with self._lock:
                self._missed_ends[run_id] = status  # sent with the next start_run, or at shutdown
            raise
        with self._lock:
            self._open_runs.discard(run_id)
            self._missed_ends.pop(run_id, None)

    def _send_missed_ends(self) -> None:
        with self._lock:
            missed = dict(self._missed_ends)
        for run_id, status in missed.items():
            self.end_run(run_id, status)
            log.info("run %s: ended as %s now that the store answers again", run_id, status)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params in batches of 100; values are stringified, masked and truncated to MLflow's limit."""
        items = [Param(str(k), _masked_value(k, v, MAX_PARAM_VAL_LENGTH)) for k, v in params.items()]
        with self._mlflow(f"log params to run {run_id}") as client:
            for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
                client.log_batch(run_id, params=chunk, synchronous=True)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log metrics in batches of 1000 (never one call per value)."""
        timestamp = _now_ms()
        items = []
        for key, value in metrics.items():
            try:
                items.append(Metric(str(key), float(value), timestamp, int(step)))
            except (TypeError, ValueError) as exc:
                raise DataValidationError(
                    f"metric value must be a number, got {type(value).__name__}", field=key
                ) from exc
        with self._mlflow(f"log metrics to run {run_id}") as client:
            for chunk in _chunks(items, MAX_METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=chunk, synchronous=True)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set run tags in batches of 100 (masked and truncated like params)."""
        items = [RunTag(k, v) for k, v in self._clean_tags(tags).items()]
        with self._mlflow(f"tag run {run_id}") as client:
            for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
                client.log_batch(run_id, tags=chunk, synchronous=True)

    def log_artifact(self, run_id: str, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file, or a folder's content, under ``artifact_path``."""
        path = Path(local_path)
        with self._mlflow(f"log artifact {path.name!r} to run {run_id}") as client:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path)
            else:
                client.log_artifact(run_id, str(path), artifact_path)

    def log_figure(self, run_id: str, figure: Any, name: str) -> None:
        """Store a plotly figure as ``figures/<name>.html`` and ``figures/<name>.json``. The HTML embeds plotly.js
        (about 4.7 MB) so it opens offline, in the MLflow UI too (which shows it in a sandboxed frame where no
        relative script could load)."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise DataValidationError(f"figure name must be a plain file name, got {name!r}", field="name")
        if not (callable(getattr(figure, "to_html", None)) and callable(getattr(figure, "to_json", None))):
            raise TypeError(f"log_figure() needs a plotly Figure, got {type(figure).__name__}")
        with tempfile.TemporaryDirectory(prefix="ehub-figure-") as tmp:
            folder = Path(tmp)
            (folder / f"{name}.html").write_text(figure.to_html(include_plotlyjs=True, full_html=True), "utf-8")
            (folder / f"{name}.json").write_text(figure.to_json(), "utf-8")
            with self._mlflow(f"log figure {name!r} to run {run_id}") as client:
                client.log_artifacts(run_id, tmp, "figures")

    def download_artifact(self, run_id: str, artifact_path: str, dst_dir: str | Path | None = None) -> Path:
        """Fetch an artifact (file or folder) to ``dst_dir`` (default: a new temporary folder); return its path."""
        target = Path(dst_dir) if dst_dir is not None else Path(tempfile.mkdtemp(prefix="ehub-artifact-"))
        target.mkdir(parents=True, exist_ok=True)
        with self._mlflow(f"download {artifact_path!r} of run {run_id}") as client:
            return Path(client.download_artifacts(run_id, artifact_path, str(target)))

    def get_run(self, run_id: str) -> RunRecord:
        with self._mlflow(f"get run {run_id}") as client:
            run = client.get_run(run_id)
            return self._record(client, run)

    def search_runs(
        self, experiment: str, filter_string: str = "", max_results: int = 100, order_by: list[str] | None = None
    ) -> list[RunRecord]:
        """Runs of ``experiment`` (none if it does not exist), newest first unless ``order_by`` says otherwise."""
        found = self.get_experiment(experiment)
        if found is None:
            return []
        with self._mlflow(f"search runs of {experiment!r}") as client:
            runs = client.search_runs(
                [found["id"]],
                filter_string=filter_string,
                max_results=max_results,
                order_by=order_by or ["attributes.start_time DESC"],
            )
            return [self._record(client, run) for run in runs]

    def _record(self, client: MlflowClient, run: Any) -> RunRecord:
        info, data = run.info, run.data
        name = self._experiment_names.get(info.experiment_id)
        if name is None:
            name = client.get_experiment(info.experiment_id).name
            self._experiment_names[info.experiment_id] = name
        return RunRecord(
            run_id=info.run_id,
            experiment=name,
            status=info.status,
            start_time=info.start_time,
            end_time=info.end_time,
            params=dict(data.params),
            metrics=dict(data.metrics),
            tags=dict(data.tags),
        )

    @staticmethod
    def _clean_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
        return {str(k): _masked_value(k, v, MAX_TAG_VAL_LENGTH) for k, v in (tags or {}).items()}

    # --- models ---------------------------------------------------------------------------------------------------

    def log_model(self, run_id: str, model: Any, name: str = "model", pip_requirements: list[str] | None = None) -> str:
        """Log an object with ``predict(DataFrame)`` as a pyfunc model of the run; return ``runs:/<run>/<name>``.

        ``pip_requirements`` defaults to pinned mlflow, cloudpickle, pandas, numpy and scikit-learn (as installed).
        """
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"log_model() needs an object with predict(DataFrame), got {type(model).__name__}")
        if not name or "/" in name or name.startswith("."):
            raise DataValidationError(f"model name must be a plain folder name, got {name!r}", field="name")
        with tempfile.TemporaryDirectory(prefix="ehub-model-") as tmp:
            local = Path(tmp) / name
            try:
                mlflow.pyfunc.save_model(
                    path=str(local),
                    python_model=PyfuncModelWrapper(model),
                    pip_requirements=pip_requirements if pip_requirements is not None else _model_requirements(),
                )
            except Exception as exc:  # pickling runs arbitrary __reduce__ code; report it as the plugin's error
                raise PluginError(
                    f"cannot serialize {type(model).__name__} as an MLflow model: {exc}", plugin_type="mlops"
                ) from exc
            with self._mlflow(f"log model {name!r} to run {run_id}") as client:
                client.log_artifacts(run_id, str(local), name)
        return f"runs:/{run_id}/{name}"

    def register_model(
        self, name: str, model_uri: str, run_id: str | None = None, tags: Mapping[str, str] | None = None
    ) -> ModelVersion:
        """Register ``model_uri`` (``runs:/<run>/<path>``) as a new version of the registered model ``name``."""
        match = _RUNS_SOURCE.match(model_uri)
        if match is None:
            raise DataValidationError(f"expected runs:/<run_id>/<path>, got {model_uri!r}", field="model_uri")
        with self._mlflow(f"register a version of model {name!r}") as client:
            try:
                client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            version = client.create_model_version(
                name, model_uri, run_id=run_id or match["run_id"], tags=self._clean_tags(tags) or None
            )
        log.info("registered %s version %s from run %s", name, version.version, version.run_id)
        return self._version(version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version``. MLflow's set is check-then-insert, so two writers racing to create
        the same alias collide on its unique key; the loser retries, which then updates the alias."""
        with self._mlflow(f"set alias {alias!r} of model {name!r}") as client:
            for attempt in range(3):
                try:
                    client.set_registered_model_alias(name, alias, str(version))
                    return
                except MlflowException as exc:
                    if attempt == 2 or "unique" not in str(exc).lower():
                        raise

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version the alias points at, or None (also when the model does not exist)."""
        with self._mlflow(f"get alias {alias!r} of model {name!r}") as client:
            try:
                return self._version(client.get_model_version_by_alias(name, alias))
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, newest first (none if the model does not exist)."""
        quoted = name.replace("\\", "\\\\").replace("'", "\\'")
        versions: list[Any] = []
        token = None
        with self._mlflow(f"list versions of model {name!r}") as client:
            while True:
                page = client.search_model_versions(f"name = '{quoted}'", page_token=token)
                versions.extend(page)
                token = page.token
                if not token:
                    break
            aliases: dict[int, list[str]] = {}
            if versions:  # search_model_versions leaves aliases empty; the registered model has them
                for alias, number in (client.get_registered_model(name).aliases or {}).items():
                    aliases.setdefault(int(number), []).append(alias)
        return sorted(
            (replace(self._version(v), aliases=tuple(sorted(aliases.get(int(v.version), [])))) for v in versions),
            key=lambda v: v.version,
            reverse=True,
        )

    def load_model(self, name: str, version: int | None = None, alias: str | None = None) -> Any:
        """Load the object logged by ``log_model`` for a version or an alias (default: ``champion``).

        Only versions whose source is a run of this store load (see the module's trust boundary).
        """
        if version is not None and alias is not None:
            raise ValueError("give a version or an alias, not both")
        alias = alias or (DEFAULT_ALIAS if version is None else None)
        label = f"version {version}" if version is not None else f"alias {alias!r}"
        with self._mlflow(f"load model {name!r} {label}") as client:
            try:
                found = (
                    client.get_model_version(name, str(version))
                    if version is not None
                    else client.get_model_version_by_alias(name, alias)
                )
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise ExperimentNotFound(f"model {name!r} has no {label} in {self.masked_uri}") from exc
                raise
            match = _RUNS_SOURCE.match(found.source or "")
            if match is None:
                raise ConflictError(
                    f"model {name!r} {label} has source {redact(found.source)!r}, outside this store's runs; "
                    "refusing to unpickle it"
                )
            with tempfile.TemporaryDirectory(prefix="ehub-load-") as tmp:
                local = client.download_artifacts(match["run_id"], match["path"], tmp)
                loaded = mlflow.pyfunc.load_model(local)
        wrapper = loaded.unwrap_python_model()
        return wrapper.model if isinstance(wrapper, PyfuncModelWrapper) else loaded

    @staticmethod
    def _version(version: Any) -> ModelVersion:
        return ModelVersion(
            name=version.name,
            version=int(version.version),
            run_id=version.run_id or None,
            aliases=tuple(version.aliases or ()),
            created=version.creation_timestamp,
            tags=dict(version.tags or {}),
        )
