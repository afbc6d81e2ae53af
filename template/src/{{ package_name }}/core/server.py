"""The production server: the uvicorn worker gunicorn runs (`worker_class` in gunicorn.conf.py).

It adds to uvicorn-worker's worker what an internet-facing service needs (decision 0014):
- limits at the edge: request line (414), header count and size (431), a header timeout
  from the connection's first byte (slow or idle clients), a body timeout, a connection
  cap per worker (503), all answered in the error envelope, and no `server` header;
- draining: from SIGTERM on, readiness answers 503 (`is_draining`); on SIGTERM and on a
  recycle, in-flight requests finish with `Connection: close`, and a request already on its
  way over an idle keep-alive connection is still answered;
- recycling after `max_requests` that counts no health probe, one worker at a time;
- on SIGHUP, old workers serve until the new ones have started (Successors);
- gunicorn's listening sockets closed once (uvicorn closed them a second time).
"""

import asyncio
import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from gunicorn.arbiter import Arbiter
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import Server, ServerState
from uvicorn_worker import UvicornWorker

from .errors import error_body

log = logging.getLogger("uvicorn.error")

HEALTH_PREFIX = "/health/"
# After the last recycle ended, the next waits this long, so its replacement is up first.
RECYCLE_SPACING_SECONDS = 5.0
# How long a refused connection's further bytes are read and dropped before it is closed.
LINGER_SECONDS = 1.0


class _Drain:
    active = False


def is_draining() -> bool:
    """True once this process has begun to shut down; readiness then answers 503."""
    return _Drain.active


def start_draining() -> None:
    if not _Drain.active:
        log.info("Draining: readiness answers 503 from now on")
    _Drain.active = True


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise SystemExit(f"{name}={raw!r} is not a number of seconds; set it to e.g. {default:g}")
    return value


@dataclass(frozen=True)
class Limits:
    """What one connection may send and how long it may take; 0 means no limit."""

    max_request_line: int = 8190
    max_header_count: int = 100
    max_header_size: int = 8190
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    # During a drain, how long an idle keep-alive connection stays open for a request
    # that was already on its way.
    drain_grace: float = 1.0

    @property
    def max_head(self) -> int:
        """The most bytes a request's line and headers may take together."""
        return self.max_request_line + self.max_header_count * (self.max_header_size + 4) + 4

    @classmethod
    def from_gunicorn(cls, cfg: Any) -> "Limits":
        """gunicorn's own settings, and the two timeouts gunicorn.conf.py exports."""
        return cls(
            max_request_line=cfg.limit_request_line or cls.max_request_line,
            max_header_count=cfg.limit_request_fields or cls.max_header_count,
            max_header_size=cfg.limit_request_field_size or cls.max_header_size,
            header_timeout=_seconds("HEADER_TIMEOUT", cls.header_timeout),
            body_timeout=_seconds("BODY_TIMEOUT", cls.body_timeout),
            max_connections=cfg.worker_connections,
        )


class _Refused(Exception):
    """Raised in a parser callback to refuse the request; httptools wraps it."""


class CountingState(ServerState):
    """uvicorn's per-worker state, plus the requests recycling counts (no health probes)."""

    def __init__(self) -> None:
        super().__init__()
        self.counted_requests = 0


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits, timeouts and a gentler drain."""

    limits: ClassVar[Limits] = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._header_count = 0
        self._refusal: tuple[int, str, str] = (400, "bad_request", "The request is not valid HTTP.")
        self._timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._discarding = False

    # Timers: one at a time, for the head, the body, or the drain's grace.
    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(
        self, status: int, code: str, message: str, *, retry_after: int = 0, linger: bool = True
    ) -> None:
        """Answer in the error envelope and close the connection.

        With `linger`, what the client still sends is read and dropped for a moment before
        the close: closed with unread data, the connection would be reset, and the client
        might lose the answer.
        """
        if self.cycle is not None and not self.cycle.response_complete:
            # The app's answer, if it ever comes, goes nowhere.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        body = orjson.dumps(error_body(code, message))
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if retry_after:
            headers.append((b"retry-after", str(retry_after).encode()))
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[status] + head + b"\r\n" + body)
        self._discarding = True
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()
            self._arm(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
            self._disarm()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("Connection refused: %d open connections", len(self.connections) - 1)
            self._refuse(
                503,
                "too_many_connections",
                "Too many open connections; retry.",
                retry_after=1,
                linger=False,
            )
            return
        # An idle connection is a slow client too: it has header_timeout to send a request.
        self._arm(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        too_large = self._in_head and self._head_bytes > self.limits.max_head
        if too_large and not self._discarding and not self.transport.is_closing():
            self._refuse(431, "headers_too_large", "The request's headers are too large.")

    def send_400_response(self, msg: str) -> None:
        """Any request httptools refuses, ours included, in the error envelope."""
        self._refuse(*self._refusal)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        if self._timer is None or self._draining:
            self._arm(self.limits.header_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_request_line:
            self._refusal = (414, "uri_too_long", "The request's URL is too long.")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            self._refusal = (431, "too_many_headers", "The request has too many headers.")
            raise _Refused
        if len(name) + len(value) > self.limits.max_header_size:
            self._refusal = (431, "headers_too_large", "A request header is too large.")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.limits.body_timeout, self._body_timed_out)
        super().on_headers_complete()
        if self._draining:
            self._close_after_response()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        state = self.server_state
        if isinstance(state, CountingState) and not self.scope["path"].startswith(HEALTH_PREFIX):
            state.counted_requests += 1
        super().on_response_complete()

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes or not self._in_head:
            self._refuse(408, "request_timeout", "The request's headers took too long.")
        else:
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            if self.cycle.response_started:
                self.transport.close()
            else:
                self._refuse(408, "request_timeout", "The request's body took too long.")

    def shutdown(self) -> None:
        """Called when the worker drains: finish what runs, answer what is on its way."""
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            # Idle, as far as we know: a request may already be on the wire.
            self._unset_keepalive_if_required()
            self._arm(self.limits.drain_grace, self._drain_grace_over)
        else:
            self._close_after_response()

    def _close_after_response(self) -> None:
        """The response says `Connection: close` (older uvicorn only closed), then closes."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            cycle.keep_alive = False
            cycle.default_headers = [*cycle.default_headers, (b"connection", b"close")]
        elif cycle is not None:
            cycle.keep_alive = False

    def _drain_grace_over(self) -> None:
        self._timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self._head_bytes:
            self.transport.close()
        elif self._in_head:
            self._refuse(408, "request_timeout", "The server is shutting down.")


def protocol_for(limits: Limits) -> type[LimitedProtocol]:
    return type("LimitedProtocol", (LimitedProtocol,), {"limits": limits})


class Recycler:
    """Lets one worker of a gunicorn at a time recycle, RECYCLE_SPACING_SECONDS apart.

    The workers share a lock file (SERVER_RUNTIME_DIR, made by gunicorn.conf.py): a worker
    holds it from the start of its recycle until it exits, and writes when it may be next.
    """

    def __init__(self, max_requests: int | None, directory: str | None) -> None:
        self.max_requests = max_requests
        self.path = os.path.join(directory, "recycle.lock") if directory else None
        self._held: int | None = None
        self._next_try = 0.0

    def due(self, counted: int) -> bool:
        if self.max_requests is None or counted < self.max_requests:
            return False
        if self.path is None:
            return True
        now = time.monotonic()
        if now < self._next_try:
            return False
        self._next_try = now + 0.5
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another worker is recycling
            os.close(fd)
            return False
        raw = os.pread(fd, 32, 0)
        if raw and time.time() < float(raw):
            os.close(fd)  # releases the lock
            return False
        self._held = fd
        return True

    def done(self) -> None:
        """The recycle is over: the next may start once this worker's replacement is up."""
        if self._held is not None:
            os.ftruncate(self._held, 0)
            os.pwrite(self._held, repr(time.time() + RECYCLE_SPACING_SECONDS).encode(), 0)
            os.close(self._held)
            self._held = None


class Successors:
    """Workers still starting, seen by the workers they replace (SERVER_RUNTIME_DIR).

    On SIGHUP gunicorn starts new workers and stops the old ones at once, before the new
    ones can answer. A worker told to stop while a younger one is starting keeps serving
    until it has started (at most `wait` seconds), so a ready worker is always there.
    """

    def __init__(self, directory: str | None, age: int, wait: float) -> None:
        self.directory, self.age, self.wait = directory, age, wait

    def _marker(self, age: int) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, f"starting-{age}")

    def starting(self) -> None:
        """Called in the master before the fork, so the marker exists before any SIGTERM."""
        if self.directory:
            with open(self._marker(self.age), "w"):
                pass

    def started(self) -> None:
        if self.directory:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._marker(self.age))

    def any_starting(self) -> bool:
        """A younger worker started less than `wait` seconds ago and not yet serving."""
        if not self.directory:
            return False
        oldest = time.time() - self.wait
        for name in os.listdir(self.directory):
            prefix, _, age = name.partition("-")
            if prefix == "starting" and age.isdigit() and int(age) > self.age:
                with contextlib.suppress(FileNotFoundError):
                    if os.path.getmtime(os.path.join(self.directory, name)) > oldest:
                        return True
        return False


class DrainingServer(Server):
    """uvicorn's server that drains on exit, recycles via a Recycler, and closes sockets once."""

    def __init__(
        self,
        config: Config,
        recycler: Recycler | None = None,
        successors: Successors | None = None,
    ) -> None:
        super().__init__(config)
        self.server_state: CountingState = CountingState()
        self.recycler = recycler or Recycler(None, None)
        self.successors = successors or Successors(None, 0, 0)
        self._exit_signal: int | None = None
        self._wait_until = 0.0

    async def startup(self, sockets: list[Any] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.successors.started()

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._exit_signal is None and self.successors.any_starting():
            log.info("Stopping once the workers replacing this one have started")
            self._exit_signal = sig
            self._wait_until = time.monotonic() + self.successors.wait
            return
        self._exit_signal = None
        start_draining()
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._exit_signal is not None and (
            time.monotonic() > self._wait_until or not self.successors.any_starting()
        ):
            self.handle_exit(self._exit_signal, None)
        if await super().on_tick(counter):
            start_draining()
            return True
        if self.recycler.due(self.server_state.counted_requests):
            # Not draining: the other workers keep serving, so the service is still ready,
            # and a probe this worker accepted just before stopping is answered as such.
            log.info("Recycling after %d requests", self.server_state.counted_requests)
            return True
        return False

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        # Closing the server closes the listening sockets; uvicorn then closed them again, and
        # a second close can hit a descriptor reused meanwhile (a database connection).
        try:
            await super().shutdown(sockets=None)
        finally:
            self.recycler.done()


class Worker(UvicornWorker):  # type: ignore[misc]  # pragma: no cover - only gunicorn runs it
    """gunicorn's worker: uvicorn with LimitedProtocol and DrainingServer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The app configured logging before the fork (preload_app), sending the servers'
        # loggers to its root handler. uvicorn-worker gives uvicorn's logger gunicorn's
        # handlers, and gunicorn puts its own back when SIGHUP re-reads its config: undo both.
        if logging.getLogger().handlers:
            for name in ("gunicorn.error", "uvicorn.error"):
                server_log = logging.getLogger(name)
                server_log.handlers = []
                server_log.propagate = True
        limits = Limits.from_gunicorn(self.cfg)
        self.config.http = protocol_for(limits)
        self.config.server_header = False
        self.config.limit_max_requests = None  # counted by DrainingServer, without probes
        self.config.timeout_graceful_shutdown = max(1, self.cfg.graceful_timeout - 1)
        runtime_dir = os.environ.get("SERVER_RUNTIME_DIR")
        self.recycler = Recycler(
            self.max_requests if self.cfg.max_requests > 0 else None, runtime_dir
        )
        self.successors = Successors(runtime_dir, self.age, min(10, self.cfg.graceful_timeout / 2))
        self.successors.starting()

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = DrainingServer(self.config, self.recycler, self.successors)
        self._install_sigquit_handler()
        # The plain sockets, not gunicorn's wrappers: the event loop closes them when the
        # server closes, and a wrapper closed afterwards logged "Error while closing socket".
        await server.serve(sockets=[getattr(sock, "sock", sock) for sock in self.sockets])
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
