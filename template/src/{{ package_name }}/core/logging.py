"""structlog setup: JSON in production, readable console otherwise.

Our own loggers write straight through structlog (the fast path); the stdlib and
uvicorn/gunicorn loggers are routed through the same processors by a
ProcessorFormatter, so every line has one format.
"""

import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ..config import Settings

# The current request's id; set by RequestContextMiddleware, added to every line logged while
# the request runs. One ContextVar is cheaper per request than structlog's generic binding.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def _add_request_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    # orjson is several times faster than json.dumps on the access-log hot path.
    return orjson.dumps(value, default=default).decode()


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn passes a colourised copy of its message as an `extra`; it is noise in JSON.
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(settings: Settings) -> Processor:
    if settings.is_production:
        return structlog.processors.JSONRenderer(serializer=_dumps)
    return structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())


def _level(settings: Settings) -> int:
    return logging.getLevelNamesMapping()[settings.log_level]


def configure_logging(settings: Settings) -> None:
    renderer = _renderer(settings)
    # JSON lines carry tracebacks as structured data; the console prints them as text.
    exception_processors: list[Processor] = (
        [structlog.processors.dict_tracebacks] if settings.is_production else []
    )

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            *exception_processors,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level(settings)),
        logger_factory=structlog.WriteLoggerFactory(),  # current sys.stdout, looked up per logger
        # Not cached: create_app may reconfigure (tests switch JSON and console).
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            _drop_color_message,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_processors,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(_level(settings))
    # Servers keep their own handlers unless told otherwise; send them to the root.
    for name in ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error"):
        server_logger = logging.getLogger(name)
        server_logger.handlers = []
        server_logger.propagate = True
    # Our access log replaces uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True


def access_logger(settings: Settings) -> Any:
    """The access log, built once per app: same renderer and keys as every other line, but a
    short processor chain, because it runs on every request. The request id is passed in
    explicitly, so it needs no context merge."""
    return structlog.wrap_logger(
        structlog.WriteLogger(sys.stdout),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _renderer(settings),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level(settings)),
    )
