"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a stream per request)."""

import json
import re
import time
import uuid

import structlog
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from .errors import error_body, request_id_of

REQUEST_ID_HEADER = "x-request-id"
# An incoming id is echoed only if it is short and plain; anything else is replaced.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

access_log = structlog.get_logger("access")
error_log = structlog.get_logger("errors")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _SAFE_REQUEST_ID.match(candidate) else None
    return None


class RequestContextMiddleware:
    """Request id, one access-log line per request, and the last-resort 500 envelope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())
        status = 500
        response_started = False
        start = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_request_id)
            except Exception:
                error_log.exception("unhandled_error", method=scope["method"], path=scope["path"])
                status = 500
                if not response_started:
                    await _send_internal_error(send_with_request_id, request_id)
            finally:
                client = scope.get("client")
                access_log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - start) * 1000, 2),
                    client=f"{client[0]}:{client[1]}" if client else None,
                )


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = json.dumps(
        error_body("internal_error", "An unexpected error occurred.", None, request_id)
    ).encode()
    await _send_json(send, 500, body)


class SecurityHeadersMiddleware:
    """Conservative headers for a JSON API; HSTS and a strict CSP in production."""

    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        headers: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if production:
            headers += [
                (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
                (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
            ]
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TrustedHostMiddleware:
    """Refuse requests whose Host is not allowed ("*.example.com" matches subdomains)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str]) -> None:
        self.app = app
        self.exact = {host for host in allowed_hosts if not host.startswith("*.")}
        self.suffixes = tuple(host[1:] for host in allowed_hosts if host.startswith("*."))

    def _allowed(self, host: str) -> bool:
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1").rsplit(":", 1)[0] if value else ""
                break
        if self._allowed(host):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("state", {}))
        body = json.dumps(error_body("invalid_host", "Invalid host header.", None, request_id))
        await _send_json(send, 400, body.encode())


def add_middleware(app: FastAPI, settings: Settings) -> None:
    """Install the stack; the last added runs first (outermost)."""
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(SecurityHeadersMiddleware, production=settings.is_production)
    if settings.allowed_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(RequestContextMiddleware)
