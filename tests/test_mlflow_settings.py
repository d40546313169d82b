"""The MLflow internals ``framework.plugins.mlflow_settings`` relies on are still there, and it scopes them."""

from __future__ import annotations

import inspect

from framework.plugins.mlflow_settings import HOOKED_VARIABLES, ClientSettings, active


def test_mlflow_still_reads_its_http_settings_through_these_variables():
    import mlflow.utils.rest_utils as rest_utils
    from mlflow import environment_variables

    for name in HOOKED_VARIABLES:
        assert callable(getattr(getattr(environment_variables, name), "get", None)), name
    source = inspect.getsource(rest_utils)
    http_settings = [f"MLFLOW_HTTP_REQUEST_{part}" for part in ("TIMEOUT", "MAX_RETRIES", "BACKOFF_FACTOR")]
    for name in http_settings:
        assert f"{name}.get()" in source, f"mlflow.utils.rest_utils no longer calls {name}.get(); revisit the hook"


def test_mlflow_still_makes_artifact_pools_where_the_hook_looks():
    from mlflow.store.artifact.artifact_repo import ArtifactRepository

    assert "ThreadPoolExecutor(" in inspect.getsource(ArtifactRepository._create_thread_pool) or getattr(
        ArtifactRepository._create_thread_pool, "experimenthub_hook", False
    ), "ArtifactRepository no longer creates its pool in _create_thread_pool; revisit the hook"


def test_settings_reach_mlflow_artifact_threads():
    from mlflow import environment_variables as env
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    settings = ClientSettings(timeout=(1.5, 9.0), max_retries=1, backoff_factor=0.25, server_cert_path="/ca.pem")
    with active(settings):
        pool = LocalArtifactRepository("file:///tmp")._create_thread_pool()
        seen = pool.submit(
            lambda: (env.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), env.MLFLOW_TRACKING_SERVER_CERT_PATH.get())
        )
        assert seen.result(timeout=10) == (1, "/ca.pem")
    pool.shutdown()


def test_settings_apply_inside_the_context_only(monkeypatch):
    from mlflow import environment_variables as env

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    settings = ClientSettings(timeout=(1.5, 9.0), max_retries=1, backoff_factor=0.25)
    with active(settings):
        assert env.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 1
        assert env.MLFLOW_HTTP_REQUEST_TIMEOUT.get() == (1.5, 9.0)
        assert env.MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is False
    assert env.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 7
