"""structlog setup: JSON in production, readable console otherwise.

Our own loggers write straight through structlog (the fast path); the stdlib and
uvicorn/gunicorn loggers are routed through the same processors by a
ProcessorFormatter, so every line has one format.
"""

import logging
import sys

import structlog
from structlog.typing import Processor

from ..config import Settings


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(settings: Settings) -> None:
    json_logs = settings.is_production
    level = logging.getLevelNamesMapping()[settings.log_level]
    renderer: Processor
    if json_logs:
        renderer = structlog.processors.JSONRenderer()
        exception_processors: list[Processor] = [
            structlog.processors.dict_tracebacks,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        exception_processors = []

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            *exception_processors,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(),  # current sys.stdout, looked up per logger
        # Not cached: create_app may reconfigure (tests switch JSON and console).
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
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
    root.setLevel(level)
    # Servers keep their own handlers unless told otherwise; send them to the root.
    for name in ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error"):
        server_logger = logging.getLogger(name)
        server_logger.handlers = []
        server_logger.propagate = True
    # Our access log replaces uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
