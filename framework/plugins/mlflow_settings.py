"""Per-plugin MLflow HTTP settings, without touching the process environment.

MLflow reads ``MLFLOW_HTTP_REQUEST_TIMEOUT``/``..._MAX_RETRIES``/``..._BACKOFF_FACTOR`` through
``mlflow.environment_variables`` on every request, and its defaults retry a dead server for about four minutes.
Changing ``os.environ`` would change every library in the process, so instead, the first time a plugin call runs,
this module wraps the ``.get`` of those variables (and of two output switches: no progress bars, no run URLs on
stdout). The wrapper answers with the settings of the plugin whose call is running in this thread or task (a
``ContextVar``), and with the usual environment value everywhere else, so code outside a plugin call sees MLflow
unchanged. MLflow's artifact thread pools run their tasks in the caller's context, so the settings reach them too.
``tests/test_mlflow_settings.py`` fails if the MLflow internals this relies on change.

>>> with active(ClientSettings(timeout=(3.0, 30.0), max_retries=1, backoff_factor=0.5)):
...     client.search_experiments()        # at most one retry, 3 s to connect
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["HOOKED_VARIABLES", "ClientSettings", "active"]

# MLflow environment variable -> ClientSettings attribute that answers for it during a plugin call
HOOKED_VARIABLES: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "timeout",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "max_retries",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "backoff_factor",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "progress_bar",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "suppress_run_url",
    "MLFLOW_TRACKING_SERVER_CERT_PATH": "server_cert_path",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH": "client_cert_path",
}


@dataclass(frozen=True)
class ClientSettings:
    """What one plugin's MLflow calls use."""

    timeout: tuple[float, float]  # (connect, read) seconds, as requests accepts
    max_retries: int
    backoff_factor: float
    progress_bar: bool = False  # no tqdm bars on stderr from a service
    suppress_run_url: bool = True  # no "View run <url>" on stdout (the URL would carry the URI's credentials)
    # None: the environment's value (MLflow's own MLFLOW_TRACKING_* variables) still applies
    server_cert_path: str | None = None  # CA bundle of an https server
    client_cert_path: str | None = None


_ACTIVE: ContextVar[ClientSettings | None] = ContextVar("experimenthub_mlflow_settings", default=None)
_HOOK_LOCK = threading.Lock()


def _install_hook() -> None:
    """Wrap the variables' ``.get`` once (idempotent); outside ``active`` they still read the environment."""
    from mlflow import environment_variables

    with _HOOK_LOCK:
        for name, attr in HOOKED_VARIABLES.items():
            variable = getattr(environment_variables, name)
            if getattr(variable.get, "experimenthub_hook", False):
                continue
            from_environment = variable.get

            def scoped(from_environment: Any = from_environment, attr: str = attr) -> Any:
                settings = _ACTIVE.get()
                value = None if settings is None else getattr(settings, attr)
                return from_environment() if value is None else value

            scoped.experimenthub_hook = True  # type: ignore[attr-defined]
            variable.get = scoped
        _propagate_into_artifact_threads()


class _ContextPool(ThreadPoolExecutor):
    """A pool whose tasks run in the submitter's context, so the active settings reach MLflow's artifact threads."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def _propagate_into_artifact_threads() -> None:
    """MLflow uploads and downloads artifacts on a pool per repository (``_create_thread_pool``); a ``ContextVar``
    does not cross into those threads by itself. Called under ``_HOOK_LOCK``."""
    from mlflow.store.artifact.artifact_repo import ArtifactRepository

    if getattr(ArtifactRepository._create_thread_pool, "experimenthub_hook", False):
        return

    def create_thread_pool(repo: Any) -> ThreadPoolExecutor:
        return _ContextPool(max_workers=repo.max_workers, thread_name_prefix=f"Mlflow{type(repo).__name__}")

    create_thread_pool.experimenthub_hook = True  # type: ignore[attr-defined]
    ArtifactRepository._create_thread_pool = create_thread_pool  # type: ignore[method-assign]


@contextlib.contextmanager
def active(settings: ClientSettings) -> Iterator[None]:
    """Make ``settings`` the answer of MLflow's HTTP and output settings in this context."""
    _install_hook()
    token = _ACTIVE.set(settings)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
