"""MLflow fixtures: a real tracking server on PostgreSQL (once per session) and an embedded SQLite store.

Fixtures
--------
``mlflow_server`` (session)
    A running ``mlflow server`` (PostgreSQL backend in a throwaway database, served artifacts in a temp folder,
    ``--workers 1``, a free port). Has ``.uri``, ``.port``, ``.uri_with(userinfo)``, ``.stop()`` and ``.start()``
    (same port, same database). A test that stops it must start it again.
``mlflow_sqlite_uri`` (session)
    ``sqlite:///…/mlflow.db`` in a session folder; the schema is created once.
``server_mlflow_plugin`` / ``sqlite_mlflow_plugin``
    An initialized ``MLflowPlugin`` on that backend, shut down after the test.
``mlflow_plugin``
    Parametrized over both: each test that uses it runs as ``[server]`` and ``[sqlite]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from framework.devservices import MlflowServer, free_port, throwaway_mlflow_server
from tests.conftest import require_service

__all__ = [
    "MlflowServer",
    "free_port",
    "mlflow_plugin",
    "mlflow_server",
    "mlflow_sqlite_uri",
    "server_mlflow_plugin",
    "sqlite_mlflow_plugin",
]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    require_service("postgresql")
    with throwaway_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), "postgres") as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    from framework.plugins.mlflow_plugin import MLflowPlugin

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow-sqlite') / 'state' / 'mlflow.db'}"
    plugin = MLflowPlugin(mlflow_uri=uri)
    plugin.initialize()  # creates the schema once for the session
    plugin.shutdown()
    return uri


@pytest.fixture
def server_mlflow_plugin(mlflow_server: MlflowServer) -> Iterator:
    from framework.plugins.mlflow_plugin import MLflowPlugin

    plugin = MLflowPlugin(mlflow_uri=mlflow_server.uri)
    plugin.initialize()
    yield plugin
    plugin.shutdown()


@pytest.fixture
def sqlite_mlflow_plugin(mlflow_sqlite_uri: str) -> Iterator:
    from framework.plugins.mlflow_plugin import MLflowPlugin

    plugin = MLflowPlugin(mlflow_uri=mlflow_sqlite_uri)
    plugin.initialize()
    yield plugin
    plugin.shutdown()


@pytest.fixture(params=["server", "sqlite"])
def mlflow_plugin(request: pytest.FixtureRequest):
    """An initialized MLflowPlugin, once on the server and once on SQLite."""
    return request.getfixturevalue(f"{request.param}_mlflow_plugin")
