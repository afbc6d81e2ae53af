"""A deadline for every request: a response not started within REQUEST_TIMEOUT seconds is
stopped (its task cancelled, so its database work is rolled back and its connection returned)
and answered 504 in the error envelope.

Pure ASGI and innermost, so it bounds the app's own work. Probes are exempt: each has its
own time bound (READINESS_TIMEOUT). Once the response has started the deadline is lifted:
a streamed body is bounded by the server's timeouts, and a 504 could no longer be sent.

One timer per process, not one per request: every request gets the same number of seconds,
so the running requests' deadlines come in the order they started. The timer waits for the
oldest one only. A request adds itself to that queue and takes itself out, two dictionary
operations, where asyncio.timeout schedules and cancels a timer of its own (about a tenth
of a small route's time in the app).
"""

import asyncio
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import DeadlineExceededError, FailureLog, send_error

EXEMPT_PATH_PREFIX = "/health/"
# A timer may fire a hair early (the loop's clock ticks in milliseconds under uvloop); a
# deadline this close counts as reached, rather than setting the timer again at once.
CLOCK_RESOLUTION = 0.001


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.failures = FailureLog("request_timed_out")
        # Running requests' tasks and their deadlines (loop time), oldest first.
        self._running: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()  # cancelled by the timer
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's

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
        task = asyncio.current_task()
        assert task is not None  # an ASGI app always runs in a task
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:
            self._start_timer(loop)
        running = self._running
        running[task] = loop.time() + self.seconds
        cancelling = task.cancelling()

        async def send_lifting_the_deadline(message: Message) -> None:
            if message["type"] == "http.response.start":
                running.pop(task, None)
            await send(message)

        try:
            await self.app(scope, receive, send_lifting_the_deadline)
        except asyncio.CancelledError:
            if task not in self._expired or task.uncancel() > cancelling:
                raise  # not ours, or cancelled by someone else too (the server, a shutdown)
            self.failures.record("request_timeout", seconds=self.seconds)
            await _send_timeout(send, scope)
        finally:
            running.pop(task, None)
            self._expired.discard(task)

    def _start_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:  # a new loop (tests run several): the old one's are gone
            self._running.clear()
            self._expired.clear()
            self._loop = loop
        # First for this request's own deadline; then the oldest running request's.
        self._timer = loop.call_at(loop.time() + self.seconds, self._expire)

    def _expire(self) -> None:
        """Cancel the requests past their deadline; wait again for the oldest one left."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        running = self._running
        while running:
            task, deadline = next(iter(running.items()))
            if deadline > now + CLOCK_RESOLUTION:
                self._timer = loop.call_at(deadline, self._expire)
                return
            del running[task]
            self._expired.add(task)
            task.cancel()


async def _send_timeout(send: Send, scope: Scope) -> None:
    error = DeadlineExceededError()
    await send_error(send, scope, error.status_code, error.code, error.message)
