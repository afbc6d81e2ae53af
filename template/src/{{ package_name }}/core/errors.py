"""Domain errors and the one error envelope every failure is rendered in.

{"error": {"code": str, "message": str, "details": object | null, "request_id": str | null}}
"""

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope, Send

log = structlog.get_logger(__name__)


class AppError(Exception):
    """Base for errors a service raises on purpose; subclasses set status and code."""

    status_code = 400
    code = "bad_request"
    message = "The request could not be processed."
    # True for an error whose request's writes must stand although it fails (a detected
    # refresh-token reuse revokes the family): the session dependency then commits.
    keeps_writes: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.details = details
        self.headers = headers
        super().__init__(self.message)


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"
    message = "The resource was not found."


class ConflictError(AppError):
    status_code = 409
    code = "conflict"
    message = "The resource conflicts with an existing one."


class UnauthorizedError(AppError):
    status_code = 401
    code = "unauthorized"
    message = "Authentication is required."


class ForbiddenError(AppError):
    status_code = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class ServiceUnavailableError(AppError):
    status_code = 503
    code = "service_unavailable"
    message = "The service is not available."


class DependencyUnavailableError(ServiceUnavailableError):
    """A dependency (the database, ...) cannot be reached: 503, and when to try again."""

    code = "dependency_unavailable"
    message = "A service this one depends on is unavailable; try again later."
    retry_after = 5

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message, details=details, headers={"Retry-After": str(self.retry_after)})


class DeadlineExceededError(AppError):
    """The work took longer than its time bound (a statement, lock or request timeout)."""

    status_code = 504
    code = "timeout"
    message = "The request took too long and was stopped."


class FailureLog:
    """Logs each kind of failure at most once per `interval` seconds, with a count.

    During an outage every request fails the same way; one line per kind and interval, with
    how many failures it stands for (this one and those not logged since the last line),
    keeps the log readable and its volume bounded whatever the request rate.
    """

    MAX_KINDS = 100

    def __init__(self, event: str, *, interval: float = 10.0) -> None:
        self.event = event
        self.interval = interval
        self._kinds: dict[str, tuple[float, int]] = {}  # kind: (last logged, not logged since)

    def record(self, kind: str, **fields: Any) -> bool:
        """Count one failure of `kind`; True if it was logged."""
        now = time.monotonic()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return False
        if last is None and len(self._kinds) >= self.MAX_KINDS:
            self._kinds.clear()
        self._kinds[kind] = (now, 0)
        count = 1 + (last[1] if last else 0)
        log.warning(self.event, kind=kind, count=count, **fields)
        return True


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable, machine-readable: not_found, validation_error, ...")
    message: str = Field(description="For people; may change between versions")
    details: Any = Field(default=None, description="More about the error, per code; or null")
    request_id: str | None = Field(default=None, description="As in the X-Request-ID header")


class ErrorEnvelope(BaseModel):
    """The body of every error response, documented in OpenAPI (see core.openapi)."""

    error: ErrorInfo


ERROR_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing or invalid credentials",
    403: "Not allowed for these credentials",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflicts with an existing resource",
    413: "Request body too large",
    422: "Request not valid",
    429: "Too many requests",
    500: "Unexpected error",
    503: "A dependency is unavailable; retry later",
    504: "Took too long",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the errors it raises itself (404, 409, ...), in the envelope.

    The errors every route can give (422, 500, 413, ...) are added to OpenAPI for all routes.
    """
    return {
        status: {"model": ErrorEnvelope, "description": ERROR_DESCRIPTIONS.get(status, "Error")}
        for status in statuses
    }


def request_id_of(scope_state: dict[str, Any]) -> str | None:
    value = scope_state.get("request_id")
    return value if isinstance(value, str) else None


def error_body(
    code: str, message: str, details: Any = None, request_id: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "request_id": request_id,
        }
    }


async def send_error(
    send: Send,
    scope: Scope,
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer in the envelope from an ASGI layer, where no exception handler runs: a body too
    large, a rate limit, a deadline, a bad host, the last-resort 500."""
    request_id = request_id_of(scope.get("state", {}))
    body = json.dumps(error_body(code, message, None, request_id)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    request_id = request_id_of(request.scope.get("state", {}))
    body = error_body(code, message, details, request_id)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return _response(request, exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return _response(request, 422, "validation_error", "The request is not valid.", details)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _allowed_methods(request: Request) -> str:
    """Every method of every route on the request's path (Starlette names only one route's)."""
    methods = {"OPTIONS"}
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        allow = _allowed_methods(request)
        if request.method == "OPTIONS":  # RFC 9110 (9.3.7): say what the resource allows
            return Response(status_code=204, headers={"Allow": allow})
        headers = {**(headers or {}), "Allow": allow}
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "The request failed."
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = "The resource was not found."
    return _response(request, exc.status_code, code, message, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    # Unhandled exceptions are turned into the 500 envelope by RequestContextMiddleware,
    # which also logs the traceback once.
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
