"""A maximum request body size (MAX_BODY_BYTES), enforced while the body streams in.

A request that declares a larger Content-Length is refused at once, before a byte of its body
is read; a chunked one is counted as it arrives and stopped at the limit. Either way the
body is refused before anything parses it or authenticates the caller, so an anonymous
client cannot make a worker hold a large body in memory. The 413 is the error envelope, and
the connection closes, since the rest of the body is never read.
"""

from collections.abc import Awaitable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import send_error

PAYLOAD_TOO_LARGE = 413
_CLOSE = (b"connection", b"close")  # the rest of the body is never read


class BodyTooLargeError(HTTPException):
    """Raised by `receive` past the limit; the app's handler answers it (core.errors)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            PAYLOAD_TOO_LARGE,
            f"The request body is larger than {limit} bytes.",
            headers={"Connection": "close"},
        )


class BodyLimitMiddleware:
    """Pure ASGI. A request without a body (no Content-Length, no Transfer-Encoding) and one
    whose declared length fits go straight to the app: `__call__` returns the app's call
    rather than awaiting it in a coroutine of its own."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit():
                    if int(value) > self.max_body_bytes:
                        return self._refuse(scope, send)
                    break  # the server delivers no more than the length it accepted
                if name == b"transfer-encoding":
                    return self._counted(scope, receive, send)
        return self.app(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        received = 0

        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError:
            # Read outside a route (which answers it itself): answer here, if still possible.
            if started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = BodyTooLargeError(self.max_body_bytes)
        await send_error(
            send, scope, PAYLOAD_TOO_LARGE, "payload_too_large", error.detail, [_CLOSE]
        )
