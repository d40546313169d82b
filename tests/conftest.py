"""Shared test set-up. Fixture modules per area live in tests/fixtures_*.py and are listed here."""

from __future__ import annotations

import os
import socket

import pytest

pytest_plugins: list[str] = ["tests.fixtures_mlflow"]

SERVICES = {"postgresql": 5432, "redis": 6379, "rabbitmq": 5672}


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Fail (under CI) or skip (locally) when the service a test needs is not listening."""
    port = SERVICES[name]
    if port_open(port):
        return
    message = f"{name} is not listening on 127.0.0.1:{port}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must start it: see .ci/run)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own EXPERIMENTHUB_HOME and working directory, so nothing leaks between tests."""
    monkeypatch.setenv("EXPERIMENTHUB_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"
