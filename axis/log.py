"""structlog set-up: one JSON object per line, stable snake_case event names.

Context (message ids, organ ids, request ids) is bound where it is known, so every line
about one message can be found with one grep.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", *, json: bool = True, cache: bool = False) -> None:
    """Configure structlog and the stdlib root logger (aiohttp logs through it).

    ``cache``: each logger binds its configuration on first use and keeps it (cheaper on
    every line): for the long-running server and worker, not for one-shot commands, whose
    loggers must follow a later configuration (a test's captured logs, say).
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=cache,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get(name: str = "axis") -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
