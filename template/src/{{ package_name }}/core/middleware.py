"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a stream per request).

The per-request work is kept to one layer where it can be: RequestContextMiddleware mints
or accepts the request id, adds it and the security headers to the response, writes the
access-log line and turns an unhandled exception into the 500 envelope. Its cost is
measured by scripts/benchmark.py in the template repository.
"""

import json
import random
import re
import time
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from .errors import error_body, request_id_of
from .logging import access_logger, request_id_var

# An incoming id is echoed only if it is short and plain; anything else is replaced.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

_BASE_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_PRODUCTION_SECURITY_HEADERS = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """Conservative headers for a JSON API; HSTS and a strict CSP in production."""
    if settings.is_production:
        return _BASE_SECURITY_HEADERS + _PRODUCTION_SECURITY_HEADERS
    return list(_BASE_SECURITY_HEADERS)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    content = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


class RequestContextMiddleware:
    """Request id, security headers, one access-log line, and the last-resort 500 envelope.

    It also sends clients that accept gzip through Starlette's GZipMiddleware; the others
    skip it, since it parses the headers of every request it sees.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        headers: list[tuple[bytes, bytes]],
        access_log: Any,
        gzip_minimum_size: int,
    ) -> None:
        self.app = app
        self.gzip_app = GZipMiddleware(app, minimum_size=gzip_minimum_size)
        self.headers = headers
        self.access_log = access_log
        self.error_log = structlog.get_logger("errors")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = None
        app = self.app
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if _SAFE_REQUEST_ID.match(candidate) else None
            elif name == b"accept-encoding" and b"gzip" in value:
                app = self.gzip_app
        # Ids trace requests; they are not secrets, so the fast PRNG is enough.
        request_id = request_id or f"{random.getrandbits(128):032x}"
        scope.setdefault("state", {})["request_id"] = request_id
        extra_headers = [*self.headers, (b"x-request-id", request_id.encode())]
        status = 500
        response_started = False
        start = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await app(scope, receive, send_with_headers)
        except Exception:
            self.error_log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            status = 500
            if not response_started:
                body = error_body(
                    "internal_error", "An unexpected error occurred.", None, request_id
                )
                await _send_json(send_with_headers, 500, body)
        finally:
            client = scope.get("client")
            self.access_log.info(
                "request",
                request_id=request_id,
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - start) * 1000, 2),
                client=f"{client[0]}:{client[1]}" if client else None,
            )
            request_id_var.reset(token)


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
                host = value.decode("latin-1").rsplit(":", 1)[0]
                break
        if self._allowed(host):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("state", {}))
        body = error_body("invalid_host", "Invalid host header.", None, request_id)
        await _send_json(send, 400, body)


def add_middleware(app: FastAPI, settings: Settings) -> None:
    """Install the stack; the last added runs first (outermost)."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID"],
        )
    if settings.allowed_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(
        RequestContextMiddleware,
        headers=security_headers(settings),
        access_log=access_logger(settings),
        gzip_minimum_size=1024,
    )
