"""Refuse connections to the shared services (PostgreSQL, RabbitMQ, Redis), for runs that promise to need none.

``install()`` patches ``socket.socket.connect``/``connect_ex``: a connection to 127.0.0.1/localhost on a service
port raises ``ConnectionRefusedError`` and is recorded in ``ATTEMPTS`` (so a test can be failed for it). The
``tests/no_services/sitecustomize.py`` shim installs it in every Python subprocess whose PYTHONPATH includes it.
"""

from __future__ import annotations

import socket

__all__ = ["ATTEMPTS", "SERVICE_PORTS", "install"]

SERVICE_PORTS = {5432: "postgresql", 5672: "rabbitmq", 6379: "redis"}
ATTEMPTS: list[str] = []  # module state on purpose: one list per guarded process


def _refuse(address: object) -> None:
    if isinstance(address, tuple) and len(address) >= 2 and address[1] in SERVICE_PORTS:
        attempt = f"{SERVICE_PORTS[address[1]]} at {address[0]}:{address[1]}"
        ATTEMPTS.append(attempt)
        raise ConnectionRefusedError(f"this run needs no services, but something connected to {attempt}")


def install() -> None:
    """Guard this process (idempotent)."""
    if getattr(socket.socket.connect, "_service_guard", False):
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> None:
        _refuse(address)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        _refuse(address)
        return connect_ex(self, address)

    guarded_connect._service_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
