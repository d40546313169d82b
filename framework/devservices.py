"""Throwaway local services for tests and benchmarks (and for plugin authors' own tests).

>>> from framework.devservices import throwaway_mlflow_server
>>> with throwaway_mlflow_server(tmp_path) as server:     # PostgreSQL when 127.0.0.1:5432 listens, else SQLite
...     plugin = MLflowPlugin(mlflow_uri=server.uri)

The MLflow server is the ``mlflow`` console script next to ``sys.executable`` (this module does not import
mlflow). A PostgreSQL backend needs ``psycopg2`` (the ``dev`` extra) and a server on 127.0.0.1:5432 that lets
``postgres`` in without a password.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import httpx

__all__ = [
    "PG_ADMIN_DSN",
    "PG_PORT",
    "MlflowServer",
    "free_port",
    "pg_admin",
    "port_open",
    "throwaway_mlflow_server",
]

log = logging.getLogger(__name__)

PG_PORT = 5432
PG_ADMIN_DSN = f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"
# SQLAlchemy's plain ``postgresql://`` picks psycopg (v3), which is not installed: name the driver.
_PG_STORE_URI = f"postgresql+psycopg2://postgres@127.0.0.1:{PG_PORT}/{{database}}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` (one-second timeout)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def pg_admin(statement: str, dsn: str = PG_ADMIN_DSN) -> None:
    """Run one statement outside a transaction (``CREATE DATABASE`` / ``DROP DATABASE`` need that)."""
    import psycopg2  # the dev extra; only needed for a PostgreSQL backend

    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


class MlflowServer:
    """An ``mlflow server`` subprocess that can be stopped and started again on the same port and database."""

    def __init__(
        self,
        backend_uri: str,
        artifacts: Path,
        log_file: Path,
        port: int | None = None,
        auth_config: Path | None = None,
    ) -> None:
        self.backend_uri = backend_uri
        self.auth_config = auth_config  # an MLflow basic_auth.ini: the server runs with --app-name basic-auth
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
        """Start the server (unless it runs) and wait until ``/health`` answers."""
        if self._process is not None and self._process.poll() is None:
            return
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        auth = []
        if self.auth_config is not None:
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(self.auth_config)
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", uuid.uuid4().hex)  # CSRF key of the auth app
            auth = ["--app-name", "basic-auth"]
        command = [
            str(Path(sys.executable).with_name("mlflow")),
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
            *auth,
        ]
        with self.log_file.open("ab") as out:
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self._process.returncode}; see {self.log_file}")
            try:
                if httpx.get(f"{self.uri}/health", timeout=1.0).status_code == 200:
                    log.info("mlflow server %s on %s", self.uri, self.backend_uri.split(":")[0])
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer /health within {timeout} s; see {self.log_file}")

    def stop(self) -> None:
        """Kill the server (its whole process group: uvicorn and its worker) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@contextmanager
def throwaway_mlflow_server(
    root: Path, backend: Literal["postgres", "sqlite", "auto"] = "auto", *, timeout: float = 60.0
) -> Iterator[MlflowServer]:
    """A started ``mlflow server`` on a free port, with artifacts and its log under ``root``; removed afterwards.

    ``postgres``: a uniquely named PostgreSQL database, dropped at the end; ``sqlite``: ``root/mlflow.db``;
    ``auto``: PostgreSQL when 127.0.0.1:5432 listens, else SQLite. ``timeout`` bounds the wait for ``/health``.
    """
    root.mkdir(parents=True, exist_ok=True)
    if backend == "auto":
        backend = "postgres" if port_open(PG_PORT) else "sqlite"
    database = None
    if backend == "postgres":
        database = f"ehub_throwaway_{uuid.uuid4().hex[:12]}"
        pg_admin(f'CREATE DATABASE "{database}"')
        store = _PG_STORE_URI.format(database=database)
    else:
        store = f"sqlite:///{root / 'mlflow.db'}"
    server = MlflowServer(store, root / "artifacts", root / "server.log")
    try:
        server.start(timeout)
        yield server
    finally:
        server.stop()
        if database is not None:
            pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
