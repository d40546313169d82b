"""MLflowPlugin against a real ``mlflow server --app-name basic-auth`` (its own user database, made by the test).

The right credentials (from the config, here through ``${file:...}`` as a mounted secret) work for runs, params,
metrics and served artifacts; a wrong password or none is refused at once with a ``PluginError`` that names the
user and never the password; the password reaches no log, health detail or error.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from framework.devservices import MlflowServer
from framework.errors import PluginError, PluginUnavailable

pytestmark = pytest.mark.services

ADMIN = "ehub-admin"
PASSWORD = "Adm1n-" + uuid.uuid4().hex  # unique per run: any occurrence in output is a leak


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("mlflow-auth")
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN}\nadmin_password = {PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    server = MlflowServer(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", root / "server.log", auth_config=ini)
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


def test_right_credentials_from_a_secret_file_work(
    auth_server: MlflowServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import plotly.graph_objects as go

    from framework.config import load_config
    from framework.ExperimentHub import ExperimentHub

    secret = tmp_path / "mlflow_password"
    secret.write_text(PASSWORD + "\n")  # as Docker and Kubernetes mount it
    config_path = tmp_path / "hub.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "version": "1.0",
                "plugins": {
                    "mlops": {
                        "enabled": True,
                        "type": "mlflow",
                        "config": {"mlflow_uri": auth_server.uri, "username": ADMIN, "password": f"${{file:{secret}}}"},
                    }
                },
            }
        )
    )
    caplog.set_level(logging.DEBUG)
    load_config(config_path)
    with ExperimentHub.from_config(config_path) as hub:
        plugin = hub.get_plugin("mlops")
        experiment = f"auth-{uuid.uuid4().hex[:8]}"
        plugin.create_experiment(experiment)
        with plugin.run(experiment) as run_id:
            plugin.log_params(run_id, {"alpha": 0.5})
            plugin.log_metrics(run_id, {"score": 1.25})
            plugin.log_figure(run_id, go.Figure(go.Scatter(y=[1, 2, 3])), "line")  # served artifacts need auth too
        record = plugin.get_run(run_id)
        assert record.params["alpha"] == "0.5" and record.metrics["score"] == 1.25
        assert plugin.download_artifact(run_id, "figures/line.json", tmp_path).read_text().startswith("{")
        report = hub.check_plugin_health()["mlops"]
    assert report["healthy"], report
    assert PASSWORD not in repr(report) and PASSWORD not in repr(record.params)
    assert PASSWORD not in caplog.text and PASSWORD not in repr(plugin)


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_a_wrong_or_missing_password_is_refused_clearly(auth_server: MlflowServer, password: str | None) -> None:
    from framework.plugins.mlflow_plugin import MLflowPlugin

    credentials = {"username": ADMIN, "password": password} if password else {}
    plugin = MLflowPlugin(mlflow_uri=auth_server.uri, max_retries=0, **credentials)
    with pytest.raises(PluginError) as caught:
        plugin.initialize()
    assert not isinstance(caught.value, PluginUnavailable)  # retrying the same credentials would not help
    message = str(caught.value)
    assert "HTTP 401" in message and "refused" in message
    assert (repr(ADMIN) in message) if password else ("set username and password" in message)
    assert PASSWORD not in message and "wrong-password" not in message
    healthy, details = plugin.health_check()
    assert not healthy and details["status"] == "login refused" and "wrong-password" not in repr(details)


def test_username_and_password_go_together(auth_server: MlflowServer) -> None:
    from framework.errors import ConfigError
    from framework.plugins.mlflow_plugin import MLflowPlugin

    with pytest.raises(ConfigError, match="username and password go together") as caught:
        MLflowPlugin(mlflow_uri=auth_server.uri, password=PASSWORD)
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ConfigError, match=r"ca_bundle.*no such file"):
        MLflowPlugin(mlflow_uri="https://mlflow.example:5000", ca_bundle="/no/such/bundle.pem")
