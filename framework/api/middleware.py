"""Pure ASGI middleware: the last-resort 500, bearer-token auth, and the request body limit.

They run before any body is parsed, so an unauthenticated or oversized request never reaches FastAPI's parsing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import traceback
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framework.api.errors import GENERIC_500, ApiError, error_response
from framework.errors import redact

__all__ = [
    "BearerAuthMiddleware",
    "BodyLimitMiddleware",
    "CatchAllMiddleware",
    "TimeoutMiddleware",
    "has_api_key",
    "unauthorized",
]

log = logging.getLogger(__name__)


class _TrackingSend:
    """Wrap ``send`` and record in ``started`` whether the response has begun (its status line went out)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class CatchAllMiddleware:
    """Turn any exception that escaped the handlers into a generic 500; log it server-side with secrets redacted.

    It swallows the exception afterwards, so neither Starlette nor uvicorn prints an unredacted traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracking = _TrackingSend(send)
        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            trace = redact("".join(traceback.format_exception(exc)))
            log.error("unhandled error on %s %s:\n%s", scope.get("method"), scope.get("path"), trace)
            if not tracking.started:
                await error_response(500, GENERIC_500)(scope, receive, send)


def has_api_key(headers: Headers, api_key: bytes) -> bool:
    """True when ``headers`` carry ``Authorization: Bearer <api_key>`` (constant-time compare)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key)


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <api_key>`` on every path except ``open_paths`` (constant-time compare)."""

    def __init__(self, app: ASGIApp, api_key: str, open_paths: Collection[str] = ()) -> None:
        self.app = app
        self._key = api_key.encode()
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        if has_api_key(Headers(scope=scope), self._key):
            await self.app(scope, receive, send)
            return
        await unauthorized()(scope, receive, send)


def unauthorized() -> JSONResponse:
    """The 401 answer for a missing or wrong API key."""
    message = "missing or invalid API key; send 'Authorization: Bearer <key>'"
    return error_response(401, message, field="Authorization", headers={"WWW-Authenticate": "Bearer"})


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413: at once from ``Content-Length``, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large_error()  # FastAPI re-raises HTTPExceptions met while parsing a body
            return message

        tracking = _TrackingSend(send)
        try:
            await self.app(scope, receive_limited, tracking)
        except ApiError as exc:
            if exc.status_code != 413 or tracking.started:
                raise
            await self._too_large()(scope, receive, send)

    def _too_large_error(self) -> ApiError:
        return ApiError(413, f"request body is larger than the limit of {self.max_bytes} bytes", field="body")

    def _too_large(self) -> JSONResponse:
        exc = self._too_large_error()
        return error_response(413, exc.message, field=exc.field)


class TimeoutMiddleware:
    """Answer 503 when a request is still running after ``seconds``; the late response is dropped.

    A sync route's thread cannot be stopped, so the work may go on in the background, but the client gets its
    answer in time and the connection is free again.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracking = _TrackingSend(send)
        timed_out = False

        async def guarded_send(message: Message) -> None:
            if not timed_out:
                await tracking(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if task in done:
            task.result()  # re-raise for CatchAllMiddleware
            return
        timed_out = True
        task.cancel()
        task.add_done_callback(_log_late_failure)
        log.warning(
            "%s %s still running after %g s: answered 503", scope.get("method"), scope.get("path"), self.seconds
        )
        if not tracking.started:
            message = f"the request took longer than {self.seconds:g} s; try again later or with less data"
            await error_response(503, message, code="timeout")(scope, receive, send)


def _log_late_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a timed-out request failed later: %s", redact(repr(task.exception())))
