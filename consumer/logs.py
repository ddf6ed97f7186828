"""One log pipeline for the daemon and the libraries under it.

structlog renders JSON lines (or console lines) on stdout; aiokafka's and
aiohttp's stdlib loggers go through the same processors. Tracebacks carry no
local variables, and every rendered line is scrubbed of the configured secret
values as the very last step, so no field, message or traceback can leak one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from consumer.config import LogSettings

__all__ = ["MASK", "add_secret", "configure", "get_logger"]

MASK = "**********"
# Each secret as it may appear in a rendered line: raw, JSON-escaped, repr-escaped.
# Longest first, so a secret that contains another is masked whole.
_secrets: list[str] = []


def add_secret(value: str) -> None:
    """Scrub this value from every line from now on (e.g. a token obtained at run time)."""
    if len(value) < 4:  # shorter values would mask ordinary words
        return
    forms = {value, orjson.dumps(value).decode()[1:-1], repr(value)[1:-1]}
    _secrets[:] = sorted(set(_secrets) | forms, key=len, reverse=True)


def get_logger(**context: Any) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(**context)
    return logger


def configure(
    settings: LogSettings, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Set up structlog and the stdlib root logger to write to ``stream`` (default stdout)."""
    for value in secrets:
        add_secret(value)
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    out = stream if stream is not None else sys.stdout
    shared: list[Processor] = [structlog.processors.add_log_level, _UtcTimestamp()]
    exceptions: Processor = _passthrough
    render: Processor = structlog.dev.ConsoleRenderer(
        colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
    )
    binary = None
    if settings.format == "json":
        exceptions = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        render = _render_json
        binary = getattr(out, "buffer", None)  # bytes straight to the fd: no decode per line
    factory: Any = (
        structlog.BytesLoggerFactory(binary) if binary else structlog.WriteLoggerFactory(out)
    )
    structlog.configure(
        processors=[*shared, exceptions, _Scrubbed(render, text=binary is None)],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    stdlib_chain = [*shared, structlog.stdlib.add_logger_name]
    _route_stdlib(stdlib_chain, exceptions, _Scrubbed(render, text=True), level, out)


def _route_stdlib(
    chain: list[Processor], exceptions: Processor, renderer: Processor, level: int, out: TextIO
) -> None:
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*chain, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                exceptions,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _UtcTimestamp:
    """ISO 8601 UTC with microseconds, like structlog's TimeStamper at a third of the cost:
    the date and time of day are formatted once per second (one line per record is hot)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


def _passthrough(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return event_dict


def _render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> bytes:
    return orjson.dumps(event_dict, default=repr)


class _Scrubbed:
    """Wrap a renderer: mask every known secret in its output, whatever field it hid in."""

    def __init__(self, renderer: Any, *, text: bool = False) -> None:
        self._renderer = renderer
        self._text = text

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str | bytes:
        rendered: str | bytes = self._renderer(logger, name, event_dict)
        if self._text and isinstance(rendered, bytes):
            rendered = rendered.decode()
        if isinstance(rendered, bytes):
            for secret in _secrets:
                token = secret.encode()
                if token in rendered:
                    rendered = rendered.replace(token, MASK.encode())
        else:
            for secret in _secrets:
                if secret in rendered:
                    rendered = rendered.replace(secret, MASK)
        return rendered
