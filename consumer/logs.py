"""One log pipeline for the daemon and the libraries under it.

structlog renders JSON lines (or console lines) on stdout; aiokafka's and
aiohttp's stdlib loggers go through the same processors. Tracebacks carry no
local variables, and every rendered line is scrubbed of the configured secret
values as the very last step, so no field, message or traceback can leak one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, BinaryIO, TextIO

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from consumer.config import LogSettings

__all__ = ["MASK", "add_secret", "configure", "get_logger"]

MASK = "**********"
_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """Scrub this value from every line from now on (e.g. a token obtained at run time)."""
    if len(value) >= 4:  # shorter values would mask ordinary words
        _secrets.add(value)


def get_logger(**context: Any) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(**context)
    return logger


def configure(
    settings: LogSettings,
    secrets: Iterable[str] = (),
    stream: BinaryIO | TextIO | None = None,
) -> None:
    for value in secrets:
        add_secret(value)
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    out = stream if stream is not None else sys.stdout
    if settings.format == "json":
        renderer: Processor = _Scrubbed(_render_json)
        exceptions: Processor = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        binary = out if isinstance(out, BinaryIO) or not hasattr(out, "buffer") else out.buffer
        factory: Any = structlog.BytesLoggerFactory(binary)  # type: ignore[arg-type]
        stdlib_renderer: Processor = _Scrubbed(_render_json, text=True)
    else:
        console = structlog.dev.ConsoleRenderer(
            colors=getattr(out, "isatty", lambda: False)(),
            exception_formatter=structlog.dev.plain_traceback,
        )
        renderer = stdlib_renderer = _Scrubbed(console, text=True)
        exceptions = _passthrough
        factory = structlog.WriteLoggerFactory(out)  # type: ignore[arg-type]
    structlog.configure(
        processors=[*shared, exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _route_stdlib(shared, exceptions, stdlib_renderer, level, out)


def _route_stdlib(
    shared: list[Processor], exceptions: Processor, renderer: Processor, level: int, out: Any
) -> None:
    text_out = out if not isinstance(out, BinaryIO) and hasattr(out, "write") else sys.stdout
    handler = logging.StreamHandler(text_out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
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
