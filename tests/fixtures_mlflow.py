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

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
MLFLOW_BIN = Path(sys.executable).with_name("mlflow")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_admin(statement: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


class MlflowServer:
    """An ``mlflow server`` subprocess that can be stopped and started again on the same port and database."""

    def __init__(self, backend_uri: str, artifacts: Path, log_file: Path, port: int | None = None) -> None:
        self.backend_uri = backend_uri
        self.artifacts = artifacts
        self.log_file = log_file
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def uri_with(self, userinfo: str) -> str:
        """The URI with ``user:password@`` in it (an open server ignores basic auth)."""
        return f"http://{userinfo}@127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until ``/health`` answers."""
        if self._process is not None and self._process.poll() is None:
            return
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        command = [
            str(MLFLOW_BIN),
            "server",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts),
        ]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self._process.returncode}; see {self.log_file}")
            try:
                if httpx.get(f"{self.uri}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer /health within {timeout} s; see {self.log_file}")

    def stop(self) -> None:
        """Kill the server (its whole process group: uvicorn and its worker) and wait until the port is free."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    require_service("postgresql")
    database = f"ehub_mlflow_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{database}"')
    root = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(
        f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}", root / "artifacts", root / "server.log"
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


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
