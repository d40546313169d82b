"""One error body for every failure, and the one place hub errors become HTTP statuses.

Every error answers ``{"error": {"code": "...", "message": "...", "field": "..." | null}}``:

=====================  ======  ===================
hub error / cause      status  code
=====================  ======  ===================
DataValidationError    422     validation_error
ConfigError (spec)     422     validation_error
bad request body       422     validation_error
ExperimentNotFound     404     not_found
ConflictError          409     conflict
body over the limit    413     payload_too_large
no / wrong API key     401     unauthorized
PluginError            503     unavailable
anything unexpected    500     internal_error (generic message; logged, redacted)
=====================  ======  ===================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from framework.errors import (
    ConfigError,
    ConflictError,
    DataValidationError,
    ExperimentNotFound,
    HubError,
    PluginError,
    redact,
)

__all__ = [
    "ERROR_CODES",
    "ApiError",
    "error_body",
    "error_response",
    "install_error_handlers",
    "validation_field",
]

log = logging.getLogger(__name__)

ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "unavailable",
}
GENERIC_500 = "internal server error; the server log has the details"

# Most specific first: the first matching class decides.
_HUB_STATUS: tuple[tuple[type[HubError], int], ...] = (
    (ExperimentNotFound, 404),
    (ConflictError, 409),
    (DataValidationError, 422),
    (ConfigError, 422),
    (PluginError, 503),
)


class ApiError(HTTPException):
    """An error the API raises itself, with its code and the field at fault.

    It subclasses Starlette's ``HTTPException`` so FastAPI passes it through untouched even while a body is parsed.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=dict(headers) if headers else None)
        self.code = code or ERROR_CODES.get(status_code, "error")
        self.message = message
        self.field = field


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", "field"}}``."""
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int, message: str, *, field: str | None = None, code: str | None = None, headers: Any = None
) -> JSONResponse:
    return JSONResponse(
        error_body(code or ERROR_CODES.get(status, "error"), message, field), status_code=status, headers=headers
    )


def validation_field(loc: Sequence[Any]) -> str | None:
    """``("body", "records", 0, "x")`` -> ``"records.0.x"``; query/path locations keep only the parameter name."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or None


def _validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """Each problem as ``field: reason`` (never the offending value, which may be large or secret)."""
    problems = []
    for err in errors[:10]:
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        where = validation_field(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            reason, where = f"body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})", None
        problems.append(f"{where}: {reason}" if where else reason)
    more = len(errors) - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    field = validation_field(errors[0].get("loc", ())) if errors else None
    if errors and errors[0].get("type") == "json_invalid":
        field = "body"
    return error_response(422, _validation_message(errors) or "invalid request", field=field)


async def _http_exception(request: Request, exc: HTTPException) -> JSONResponse:
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.message, field=exc.field, code=exc.code, headers=exc.headers)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 413:
        message = "request body is too large"
    return error_response(exc.status_code, message, headers=exc.headers)


async def _hub_error(request: Request, exc: HubError) -> JSONResponse:
    for cls, status in _HUB_STATUS:
        if isinstance(exc, cls):
            field = getattr(exc, "field", None)
            if isinstance(exc, ConfigError):  # its str() names the source ("spec: ..."); the reason is clearer here
                message = f"{exc.field}: {exc.reason}" if exc.field else exc.reason
                if len(exc.problems) > 1:
                    message += f" (and {len(exc.problems) - 1} more problem(s))"
            else:
                message = str(exc)
            if status == 503:
                log.warning("%s %s: plugin unavailable: %s", request.method, request.url.path, redact(message))
            return error_response(status, redact(message), field=field if isinstance(field, str) else None)
    log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, redact(str(exc)))
    return error_response(500, GENERIC_500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same body."""
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(HubError, _hub_error)
