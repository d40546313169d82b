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
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framework.api.dashboard import CSRF_HEADER, SESSION_COOKIE, SessionSigner
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
    """Require ``Authorization: Bearer <api_key>`` (constant-time compare) on every path except ``open_paths`` and
    paths under ``open_prefixes``; or the dashboard's signed session cookie, with its CSRF token in
    ``X-CSRF-Token`` on anything but GET/HEAD. A browser asking for a dashboard page without either is sent to
    ``login_path``."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: str,
        open_paths: Collection[str] = (),
        *,
        sessions: SessionSigner | None = None,
        open_prefixes: Collection[str] = (),
        login_path: str | None = None,
        page_prefix: str | None = None,
    ) -> None:
        self.app = app
        self._key = api_key.encode()
        self._open = frozenset(open_paths)
        self._open_prefixes = tuple(open_prefixes)
        self._sessions = sessions
        self._login_path, self._page_prefix = login_path, page_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in self._open
            or path.startswith(self._open_prefixes)
            or scope.get("method") == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if has_api_key(headers, self._key):
            await self.app(scope, receive, send)
            return
        if self._sessions is not None:
            session = _cookie(headers, SESSION_COOKIE)
            if self._sessions.valid(session):
                safe = scope.get("method") in ("GET", "HEAD")
                if safe or self._sessions.csrf_ok(session, headers.get(CSRF_HEADER)):
                    await self.app(scope, receive, send)
                    return
                await error_response(403, "missing or invalid CSRF token", field=CSRF_HEADER)(scope, receive, send)
                return
            wants_page = self._page_prefix and path.startswith(self._page_prefix) and "/api/" not in path
            if wants_page and self._login_path:
                await RedirectResponse(self._login_path, status_code=303)(scope, receive, send)
                return
        await unauthorized()(scope, receive, send)


def unauthorized() -> JSONResponse:
    """The 401 answer for a missing or wrong API key."""
    message = "missing or invalid API key; send 'Authorization: Bearer <key>'"
    return error_response(401, message, field="Authorization", headers={"WWW-Authenticate": "Bearer"})


def _cookie(headers: Headers, name: str) -> str | None:
    from http.cookies import CookieError, SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


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
