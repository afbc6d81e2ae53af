"""A deadline for every request: a response not started within REQUEST_TIMEOUT seconds is
stopped (its task cancelled, so its database work is rolled back and its connection returned)
and answered 504 in the error envelope.

Pure ASGI and innermost, so it bounds the app's own work. Probes are exempt: each has its
own time bound (READINESS_TIMEOUT). Once the response has started the deadline is lifted:
a streamed body is bounded by the server's timeouts, and a 504 could no longer be sent.
"""

import asyncio
import json
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import DeadlineExceededError, FailureLog, error_body, request_id_of

EXEMPT_PATH_PREFIX = "/health/"


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.failures = FailureLog("request_timed_out")

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # The inner app's call itself, not awaited in a coroutine of this layer: a probe
        # (what the benchmark measures) pays one check here, no coroutine.
        if (
            not self.seconds
            or scope["type"] != "http"
            or scope["path"].startswith(EXEMPT_PATH_PREFIX)
        ):
            return self.app(scope, receive, send)
        return self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        deadline = asyncio.timeout(self.seconds)
        started = False

        async def send_lifting_the_deadline(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                deadline.reschedule(None)
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, send_lifting_the_deadline)
        except TimeoutError:
            if not deadline.expired() or started:
                raise  # not ours: a time bound inside the app that nothing handled
            self.failures.record("request_timeout", seconds=self.seconds)
            await _send_timeout(send, scope)


async def _send_timeout(send: Send, scope: Scope) -> None:
    error = DeadlineExceededError()
    request_id = request_id_of(scope.get("state", {}))
    body = json.dumps(error_body(error.code, error.message, None, request_id)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
