"""Shared test set-up. Fixture modules per area live in tests/fixtures_*.py and are listed here."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import service_guard

pytest_plugins: list[str] = ["tests.fixtures_mlflow"]

SERVICES = {"postgresql": 5432, "redis": 6379, "rabbitmq": 5672}
# Fixtures that reach a service, and parameter values that select one: a test using either is marked `services`.
SERVICE_FIXTURES = {"mlflow_server", "server_mlflow_plugin", "rabbit_stream", "trained_rabbitmq", "worker", "hub_yaml"}
SERVICE_PARAMS = {"rabbitmq", "server", "celery"}
SERVICE_MODULES = {"test_taskqueue.py", "test_mlflow_plugin.py"}  # every test there talks to a service
SERVICE_WORDS = ("rabbitmq", "celery", "postgres")  # in a test's name: it is about that service
NO_SERVICES_DIR = Path(__file__).parent / "no_services"  # its sitecustomize guards subprocesses too


def needs_services(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    values = {str(v) for v in callspec.params.values()} if callspec else set()
    return (
        item.get_closest_marker("services") is not None
        or item.path.name in SERVICE_MODULES
        or bool(SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())))
        or bool(SERVICE_PARAMS & values)
        or any(word in item.originalname for word in SERVICE_WORDS)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs a service `services`, so `-m "not services"` (make test-unit) runs the rest."""
    for item in items:
        if needs_services(item) and item.get_closest_marker("services") is None:
            item.add_marker(pytest.mark.services)


def _no_services_run(config: pytest.Config) -> bool:
    expression = " ".join((config.option.markexpr or "").split())
    return "not services" in expression


def pytest_configure(config: pytest.Config) -> None:
    """Under `-m "not services"`, no test (nor its subprocesses) may open a connection to a service port."""
    if _no_services_run(config):
        service_guard.install()
        paths = [str(NO_SERVICES_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)


@pytest.fixture(autouse=True)
def _no_service_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test of a no-services run that tried to reach a service: it needs the `services` mark."""
    before = len(service_guard.ATTEMPTS)
    yield
    if attempts := service_guard.ATTEMPTS[before:]:
        pytest.fail(f"{request.node.nodeid} connected to {attempts[0]}: mark it `services`")


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
