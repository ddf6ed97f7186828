"""One log pipeline for the daemon and the libraries under it.

structlog renders JSON lines (or console lines) on stdout; aiokafka's and
aiohttp's stdlib loggers go through the same processors. Tracebacks carry no
local variables, and every rendered line is scrubbed of the configured secret
values as the very last step, so no field, message or traceback can leak one.

Lines go out in batches: those rendered in one turn of the event loop leave in one
write at the start of the next (a write per line was a fifth of the daemon's cost
per record). :func:`flush` writes them at once; the engine calls it before every
offset commit, so a crash loses only lines of records that are processed again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, TextIO

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from consumer.config import LogSettings

__all__ = ["MASK", "add_secret", "configure", "flush", "get_logger"]

MASK = "**********"
# Each secret as it may appear in a rendered line: raw, JSON-escaped, repr-escaped.
# Longest first, so a secret that contains another is masked whole.
_secrets: list[bytes] = []


def add_secret(value: str) -> None:
    """Scrub this value from every line from now on (e.g. a token obtained at run time)."""
    if len(value) < 4:  # shorter values would mask ordinary words
        return
    forms = {value.encode(), orjson.dumps(value)[1:-1], repr(value)[1:-1].encode()}
    _secrets[:] = sorted(set(_secrets) | forms, key=len, reverse=True)


def get_logger(**context: Any) -> FilteringBoundLogger:
    """A logger of the configuration in force: call it after :func:`configure`.

    Bound now rather than structlog's lazy proxy, which resolves itself again on every
    call (``__getattr__``, then ``bind``): ~1.3 us per line, a twentieth of the daemon's
    cost per record. The bench's floor row writes its line through this logger too."""
    logger: FilteringBoundLogger = structlog.get_logger(**context).bind()
    return logger


def configure(
    settings: LogSettings, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Set up structlog and the stdlib root logger to write to ``stream`` (default stdout)."""
    for value in secrets:
        add_secret(value)
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    out = stream if stream is not None else sys.stdout
    _sink.flush()
    _sink.stream = out
    shared: list[Processor] = [structlog.processors.add_log_level, _UtcTimestamp()]
    exceptions: Processor = _passthrough
    render: Processor = structlog.dev.ConsoleRenderer(
        colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
    )
    if settings.format == "json":
        exceptions = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        render = _render_json
    structlog.configure(
        processors=[*shared, exceptions, _Scrubbed(render)],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _sink,
        cache_logger_on_first_use=True,
    )
    stdlib_chain = [*shared, structlog.stdlib.add_logger_name]
    _route_stdlib(stdlib_chain, exceptions, _Scrubbed(render, text=True), level)


def flush() -> None:
    """Write every line rendered so far (before a commit, and before the process exits)."""
    _sink.flush()


def _route_stdlib(
    chain: list[Processor], exceptions: Processor, renderer: Processor, level: int
) -> None:
    handler = _SinkHandler()
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
        self._text = text  # stdlib's formatter wants text

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str | bytes:
        rendered: str | bytes = self._renderer(logger, name, event_dict)
        line = rendered.encode() if isinstance(rendered, str) else rendered
        for secret in _secrets:
            if secret in line:
                line = line.replace(secret, _MASK_BYTES)
        return line.decode() if self._text else line


_MASK_BYTES = MASK.encode()


class _Sink:
    """structlog's logger: collects rendered lines, writes them once per loop turn.

    Lines are copied into one buffer rather than kept as objects: holding hundreds of
    orjson's freshly allocated results until the write made each render ten times slower
    (the allocator could no longer reuse the block just freed).
    """

    def __init__(self) -> None:
        self.stream: TextIO = sys.stdout
        self._buffer = bytearray()
        self._lock = threading.Lock()  # a handler's thread may log too
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def msg(self, line: bytes) -> None:
        with self._lock:
            self._buffer += line
            self._buffer += b"\n"
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here (start-up, a thread): nothing would flush later
            self.flush()
            return
        # Per loop: a flush scheduled on a loop that closed before running it must not
        # keep the next loop's lines waiting.
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush)

    debug = info = warning = error = critical = exception = msg

    def flush(self) -> None:
        with self._lock:
            self._flush_on = None
            if not self._buffer:
                return
            data, self._buffer = self._buffer, bytearray()
            binary = getattr(self.stream, "buffer", None)
            if binary is None:
                self.stream.write(data.decode())
            else:
                self.stream.flush()  # text written around us (print) stays in order
                binary.write(data)
                binary.flush()


class _SinkHandler(logging.Handler):
    """stdlib records into the same sink: one stream, one order."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _sink.msg(self.format(record).encode())
        except Exception:  # a logging failure must not take the caller down
            self.handleError(record)


_sink = _Sink()
