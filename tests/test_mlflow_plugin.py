"""MLflowPlugin against a real tracking server (PostgreSQL backend) and the embedded SQLite store.

Most tests run twice through the ``mlflow_plugin`` fixture (``[server]`` and ``[sqlite]``); read-backs go through a
fresh, independent ``MlflowClient``. The server starts once per session (tests/fixtures_mlflow.py).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from framework.errors import ExperimentNotFound, PluginError, PluginUnavailable
from framework.plugins.mlflow_plugin import MLflowPlugin
from framework.plugins.mlops import MLOpsPlugin
from framework.plugins.testing import check_plugin
from tests.fixtures_mlflow import free_port

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

PASSWORD = "s3cretpw"


def unique(prefix: str = "exp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ScoreModel:
    """A tiny fitted experiment: IsolationForest scores behind ``predict(DataFrame)``."""

    def __init__(self, seed: int = 0) -> None:
        from sklearn.ensemble import IsolationForest

        self.columns = ["a", "b", "c"]
        self.forest = IsolationForest(n_estimators=20, random_state=seed).fit(frame(seed))

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"score": self.forest.score_samples(df[self.columns])}, index=df.index)


def frame(seed: int = 0, rows: int = 64) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(seed).normal(size=(rows, 3)), columns=["a", "b", "c"])


# --- the suite over both backends ---------------------------------------------------------------------------------


def test_is_an_mlops_plugin(mlflow_plugin: MLflowPlugin) -> None:
    assert isinstance(mlflow_plugin, MLOpsPlugin)
    healthy, details = mlflow_plugin.health_check()
    assert healthy, details
    assert details["status"] == "connected"
    assert "latency_ms" in details


def test_create_experiment_is_idempotent(mlflow_plugin: MLflowPlugin) -> None:
    name = unique()
    first = mlflow_plugin.create_experiment(name, tags={"kind": "fault_detection"})
    assert mlflow_plugin.create_experiment(name) == first
    assert mlflow_plugin.get_experiment(name) == {"id": first, "name": name, "tags": {"kind": "fault_detection"}}
    assert name in {row["name"] for row in mlflow_plugin.list_experiments(tag="kind")}
    mlflow_plugin.set_experiment_tags(name, {"owner": "ops"})
    assert MlflowClient(mlflow_plugin.mlflow_uri).get_experiment(first).tags["owner"] == "ops"


def test_params_metrics_artifacts_and_figures_read_back(mlflow_plugin: MLflowPlugin, tmp_path: Path) -> None:
    import plotly.graph_objects as go

    name = unique()
    params = {f"p{i}": i for i in range(250)} | {"long": "x" * 7000, "db_password": "hunter2"}
    with mlflow_plugin.run(name, tags={"job": "42"}) as run_id:
        mlflow_plugin.log_params(run_id, params)
        mlflow_plugin.log_metrics(run_id, {f"m{i}": i / 10 for i in range(2500)}, step=0)
        mlflow_plugin.log_metrics(run_id, {"m0": 1.5}, step=1)
        mlflow_plugin.set_tags(run_id, {"stage": "trained"})
        (tmp_path / "data.csv").write_text("a,b\n1,2\n")
        mlflow_plugin.log_artifact(run_id, tmp_path / "data.csv", "dataset")
        mlflow_plugin.log_figure(run_id, go.Figure(go.Scatter(y=[1, 3, 2])), "residuals")

    run = MlflowClient(mlflow_plugin.mlflow_uri).get_run(run_id)  # independent of the plugin
    assert run.info.status == "FINISHED"
    assert run.info.run_name == name
    assert run.data.params["p249"] == "249"
    assert len(run.data.params["long"]) == 6000
    assert run.data.params["db_password"] == "***"
    assert len(run.data.metrics) == 2500
    assert run.data.metrics["m2499"] == pytest.approx(249.9)
    assert run.data.tags["job"] == "42" and run.data.tags["stage"] == "trained"
    history = MlflowClient(mlflow_plugin.mlflow_uri).get_metric_history(run_id, "m0")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.0), (1, 1.5)]

    client = MlflowClient(mlflow_plugin.mlflow_uri)
    assert {a.path for a in client.list_artifacts(run_id, "figures")} == {
        "figures/residuals.html",
        "figures/residuals.json",
    }
    local = Path(client.download_artifacts(run_id, "figures/residuals.json", str(tmp_path)))
    assert json.loads(local.read_text())["data"][0]["y"] == [1, 3, 2]
    csv = mlflow_plugin.download_artifact(run_id, "dataset/data.csv", tmp_path / "dl")
    assert csv.read_text() == "a,b\n1,2\n"

    record = mlflow_plugin.get_run(run_id)
    assert (record.experiment, record.status, record.metrics["m0"]) == (name, "FINISHED", 1.5)
    assert [r.run_id for r in mlflow_plugin.search_runs(name)] == [run_id]
    assert mlflow_plugin.search_runs(unique("missing")) == []


def test_concurrent_alias_creation_does_not_collide(server_mlflow_plugin: MLflowPlugin) -> None:
    """Two writers creating the same alias at once (two trainings finishing together) both succeed."""
    plugin = server_mlflow_plugin
    client = MlflowClient(plugin.mlflow_uri)
    errors: list[BaseException] = []
    for _ in range(6):
        name = unique()
        with plugin.run(name) as run_id:
            uri = plugin.log_model(run_id, ScoreModel(seed=1))
        versions = [plugin.register_model(name, uri, run_id=run_id).version for _ in range(2)]
        barrier = threading.Barrier(2)

        def claim(version: int, model: str = name, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                plugin.set_alias(model, "champion", version)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=claim, args=(v,)) for v in versions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert int(client.get_model_version_by_alias(name, "champion").version) in versions
    assert errors == []


def test_model_log_register_alias_load(mlflow_plugin: MLflowPlugin) -> None:
    name = unique()
    model, live = ScoreModel(seed=1), frame(seed=7)
    with mlflow_plugin.run(name) as run_id:
        uri = mlflow_plugin.log_model(run_id, model)
    first = mlflow_plugin.register_model(name, uri, run_id=run_id)
    assert (first.name, first.version, first.run_id) == (name, 1, run_id)
    mlflow_plugin.set_alias(name, "champion", first.version)

    loaded = mlflow_plugin.load_model(name)  # default alias: champion
    assert isinstance(loaded, ScoreModel)
    pd.testing.assert_frame_equal(loaded.predict(live), model.predict(live))
    pd.testing.assert_frame_equal(mlflow_plugin.load_model(name, version=1).predict(live), model.predict(live))

    with mlflow_plugin.run(name) as second_run:
        second = mlflow_plugin.register_model(name, mlflow_plugin.log_model(second_run, ScoreModel(seed=2)))
    assert [v.version for v in mlflow_plugin.list_versions(name)] == [2, 1]
    assert mlflow_plugin.get_alias(name, "champion").version == 1
    assert mlflow_plugin.get_alias(name, "nope") is None
    mlflow_plugin.set_alias(name, "champion", second.version)
    fresh = MlflowClient(mlflow_plugin.mlflow_uri).get_model_version_by_alias(name, "champion")
    assert (int(fresh.version), fresh.run_id) == (2, second_run)
    with pytest.raises(ExperimentNotFound):
        mlflow_plugin.load_model(name, version=99)


def test_two_threads_log_to_two_runs_at_once(mlflow_plugin: MLflowPlugin) -> None:
    names = [unique("thread"), unique("thread")]
    run_ids: dict[str, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def train(name: str, offset: int) -> None:
        try:
            with mlflow_plugin.run(name) as run_id:
                run_ids[name] = run_id
                barrier.wait(timeout=30)
                for step in range(5):
                    mlflow_plugin.log_metrics(run_id, {f"{name}.m{i}": offset + i for i in range(50)}, step=step)
                    mlflow_plugin.log_params(run_id, {f"{name}.p{step}": step})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(name, k * 1000)) for k, name in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    client = MlflowClient(mlflow_plugin.mlflow_uri)
    for k, name in enumerate(names):
        run = client.get_run(run_ids[name])
        assert run.info.status == "FINISHED"
        assert client.get_experiment(run.info.experiment_id).name == name
        assert set(run.data.metrics) == {f"{name}.m{i}" for i in range(50)}
        assert run.data.metrics[f"{name}.m0"] == k * 1000
        assert set(run.data.params) == {f"{name}.p{s}" for s in range(5)}


def test_run_ends_failed_when_the_body_raises(mlflow_plugin: MLflowPlugin) -> None:
    name = unique()
    with pytest.raises(RuntimeError, match="training blew up"), mlflow_plugin.run(name) as run_id:
        raise RuntimeError("training blew up")
    assert MlflowClient(mlflow_plugin.mlflow_uri).get_run(run_id).info.status == "FAILED"


def test_shutdown_ends_runs_left_open(mlflow_plugin: MLflowPlugin) -> None:
    run_id = mlflow_plugin.start_run(unique())
    mlflow_plugin.shutdown()
    mlflow_plugin.shutdown()
    assert MlflowClient(mlflow_plugin.mlflow_uri).get_run(run_id).info.status == "FAILED"
    with pytest.raises(PluginError, match="not initialized"):
        mlflow_plugin.get_run(run_id)
    assert mlflow_plugin.health_check()[0] is False


def test_delete_experiment_deletes_its_model(mlflow_plugin: MLflowPlugin) -> None:
    name = unique()
    with mlflow_plugin.run(name) as run_id:
        mlflow_plugin.register_model(name, mlflow_plugin.log_model(run_id, ScoreModel()))
    mlflow_plugin.delete_experiment(name)
    assert mlflow_plugin.get_experiment(name) is None
    assert mlflow_plugin.list_versions(name) == []
    assert name not in {row["name"] for row in mlflow_plugin.list_experiments()}
    assert mlflow_plugin.create_experiment(name)  # the name can be used again
    with pytest.raises(ExperimentNotFound):
        mlflow_plugin.get_run(uuid.uuid4().hex)


@pytest.mark.parametrize("backend", ["server", "sqlite"])
def test_passes_the_conformance_kit(backend: str, request: pytest.FixtureRequest) -> None:
    uri = request.getfixturevalue("mlflow_server").uri if backend == "server" else None
    plugin = MLflowPlugin(mlflow_uri=uri or request.getfixturevalue("mlflow_sqlite_uri"))
    report = check_plugin(plugin)
    assert not report.failures


# --- SQLite specifics ---------------------------------------------------------------------------------------------


def test_sqlite_keeps_artifacts_next_to_the_database(mlflow_sqlite_uri: str, tmp_path: Path) -> None:
    plugin = MLflowPlugin(mlflow_uri=mlflow_sqlite_uri)
    assert plugin.health_check() == (
        False,
        {"status": "not initialized", "uri": mlflow_sqlite_uri, "backend": "sqlite"},
    )
    plugin.initialize()
    plugin.initialize()
    try:
        healthy, details = plugin.health_check()
        assert healthy and details["schema_revision"], details
        with plugin.run(unique()) as run_id:
            (tmp_path / "f.txt").write_text("x")
            plugin.log_artifact(run_id, tmp_path / "f.txt")
        db_dir = Path(mlflow_sqlite_uri.removeprefix("sqlite:///")).parent
        assert list((db_dir / "artifacts").glob(f"**/{run_id}/artifacts/f.txt"))
        assert not (Path.cwd() / "mlruns").exists()
    finally:
        plugin.shutdown()


# --- server: secrets, failures, restart ---------------------------------------------------------------------------


def test_password_in_the_uri_never_leaks(mlflow_server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plugin = MLflowPlugin(mlflow_uri=mlflow_server.uri_with(f"admin:{PASSWORD}"))
    plugin.initialize()
    try:
        healthy, details = plugin.health_check()
        assert healthy, details
        assert details["uri"] == f"http://***@127.0.0.1:{mlflow_server.port}"
        assert details["server_version"]
        with plugin.run(unique()) as run_id:
            plugin.log_params(run_id, {"tracking_uri": plugin.mlflow_uri, "dsn": f"postgresql://u:{PASSWORD}@db/x"})
        params = MlflowClient(mlflow_server.uri).get_run(run_id).data.params
        with pytest.raises(ExperimentNotFound) as missing:
            plugin.get_run(uuid.uuid4().hex)
    finally:
        plugin.shutdown()
    visible = [repr(plugin), json.dumps(details), json.dumps(params), str(missing.value), caplog.text]
    assert not [text for text in visible if PASSWORD in text]


def test_unreachable_server_raises_plugin_error(caplog: pytest.LogCaptureFixture) -> None:
    plugin = MLflowPlugin(mlflow_uri=f"http://admin:{PASSWORD}@127.0.0.1:{free_port()}")
    with pytest.raises(PluginUnavailable) as raised:
        plugin.initialize()
    message = str(raised.value)
    assert "http://***@127.0.0.1" in message and "unreachable" in message
    assert PASSWORD not in message + caplog.text
    healthy, details = plugin.health_check()
    assert not healthy and details["status"] == "unreachable" and PASSWORD not in json.dumps(details)


def test_silent_server_times_out() -> None:
    """A port that accepts connections but never answers: initialize gives up after ``health_timeout``."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        plugin = MLflowPlugin(mlflow_uri=f"http://127.0.0.1:{silent.getsockname()[1]}", health_timeout=0.5)
        with pytest.raises(PluginUnavailable, match="Timeout"):
            plugin.initialize()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_server_killed_then_restarted(mlflow_server, server_mlflow_plugin: MLflowPlugin) -> None:
    plugin = server_mlflow_plugin
    run_id = plugin.start_run(unique())
    mlflow_server.stop()
    try:
        healthy, details = plugin.health_check()  # returns: a refused connection is immediate, a hang hits 3 s
        assert not healthy and details["status"] == "unreachable"
        with pytest.raises(PluginUnavailable):
            plugin.log_metrics(run_id, {"loss": 1.0})
    finally:
        mlflow_server.start()
    healthy, details = plugin.health_check()
    assert healthy, details
    plugin.log_metrics(run_id, {"loss": 0.5})
    plugin.end_run(run_id)
    assert MlflowClient(mlflow_server.uri).get_run(run_id).data.metrics == {"loss": 0.5}


def test_a_version_from_outside_the_store_is_refused_not_unavailable(sqlite_mlflow_plugin):
    from framework.errors import ConflictError

    name = f"untrusted-{uuid.uuid4().hex[:8]}"
    client = sqlite_mlflow_plugin._client  # what someone with write access to the registry could do
    client.create_registered_model(name)
    client.create_model_version(name, "file:///tmp/elsewhere/model")
    with pytest.raises(ConflictError, match="refusing to unpickle") as refused:
        sqlite_mlflow_plugin.load_model(name, version=1)
    assert not isinstance(refused.value, PluginUnavailable)  # not "retry later" (503)
