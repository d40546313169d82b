"""uvicorn's h11 protocol with a deadline for the request head (slowloris).

uvicorn bounds idle keep-alive connections, but not a client that sends its request line and headers a byte at a
time: each such connection holds a socket and a slot for as long as it likes. ``HeadDeadlineProtocol`` closes a
connection whose request head is not complete ``header_timeout`` seconds after it connected or after the previous
response. A slow body is the app's: the request timeout (``global.api.request_timeout``) runs while it is read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeadDeadlineProtocol", "with_header_timeout"]

log = logging.getLogger(__name__)


class HeadDeadlineProtocol(H11Protocol):
    """``H11Protocol`` that drops a connection whose request head is late by ``header_timeout`` seconds."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the head is in: the body and the app are the app's to bound
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.warning("%s: no complete request head within %.0f s; closing", self.client, self.header_timeout)
            self.transport.close()


def with_header_timeout(header_timeout: float) -> type[HeadDeadlineProtocol]:
    """The protocol class to pass as ``uvicorn.run(..., http=...)``."""
    return functools.partial(HeadDeadlineProtocol, header_timeout=header_timeout)  # type: ignore[return-value]
