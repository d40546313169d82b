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


def test_settings_apply_inside_the_context_only(monkeypatch):
    from mlflow import environment_variables as env

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    settings = ClientSettings(timeout=(1.5, 9.0), max_retries=1, backoff_factor=0.25)
    with active(settings):
        assert env.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 1
        assert env.MLFLOW_HTTP_REQUEST_TIMEOUT.get() == (1.5, 9.0)
        assert env.MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is False
    assert env.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 7
