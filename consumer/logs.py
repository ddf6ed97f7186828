"""One log pipeline for the daemon and the libraries under it.

structlog renders JSON lines (or console lines) on stdout; aiokafka's and
aiohttp's stdlib loggers go through the same processors. Tracebacks carry no
local variables, and every rendered line is scrubbed of the configured secret
values as the very last step, so no field, message or traceback can leak one.

Lines go out in batches: those rendered in one turn of the event loop leave in one
write at the start of the next (a write per line was a fifth of the daemon's cost
per record). :func:`flush` writes them at once; the engine calls it before every
offset commit, so a crash loses only lines of records that are processed again.

What the libraries log is trimmed here too (SASL payloads, aiohttp's malformed-request
errors, aiokafka's connection errors during a try that says so itself): one place for
every line, which is why this module runs a little over 300 lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from consumer.config import LogSettings

__all__ = ["MASK", "add_secret", "configure", "errors_muted", "flush", "get_logger", "scrub"]

MASK = "**********"
# Each secret as it may appear in a rendered line (see ``_forms``). Longest first, so a
# secret that contains another is masked whole.
_secrets: list[bytes] = []


def add_secret(value: str) -> None:
    """Scrub this value from every line from now on (e.g. a token obtained at run time)."""
    if len(value) < 4:  # shorter values would mask ordinary words
        return
    _secrets[:] = sorted(set(_secrets) | _forms(value), key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with every known secret masked: for what the daemon writes outside the log
    (headers of the records it produces, the operator tools' reports)."""
    # surrogatepass: a lone surrogate (a handler's exception text) travels through as it was.
    data = text.encode("utf-8", "surrogatepass")
    for secret in _secrets:
        if secret in data:
            data = data.replace(secret, _MASK_BYTES)
    return data.decode("utf-8", "surrogatepass")


def _forms(value: str) -> set[bytes]:
    """The secret as text, as Python's repr of it as text or as UTF-8 bytes (how a
    library logs a struct holding it, e.g. aiokafka's SASL/PLAIN payload at DEBUG), with
    either quote escaped, and each of those again as a JSON string holds it."""
    reprs = {repr(value)[1:-1], repr(value.encode())[2:-1]}
    # Inside a larger repr the delimiter may be the other quote: ' escaped or not.
    reprs |= {form.replace("\\'", "'") for form in reprs}
    reprs |= {form.replace("'", "\\'") for form in reprs if "\\'" not in form}
    texts = {value, *reprs}
    return {text.encode() for text in texts} | {orjson.dumps(text)[1:-1] for text in texts}


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
    handler.addFilter(_withhold_auth)
    handler.addFilter(_quiet_bad_requests)
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
        # The console renderer pops fields as it goes: a second try needs them all.
        kept = event_dict if self._renderer is _render_json else dict(event_dict)
        try:
            rendered: str | bytes = self._renderer(logger, name, event_dict)
        except Exception:
            # A value no renderer takes (an int past 64 bits, a lone surrogate, a cycle, a
            # repr that raises: a handler's annotation, say): the line goes out all the
            # same, such values as text. A log call never raises.
            rendered = self._renderer(logger, name, _plain(kept, 0))
        if isinstance(rendered, str):
            rendered = rendered.encode("utf-8", "backslashreplace")
        line = rendered
        for secret in _secrets:
            if secret in line:
                line = line.replace(secret, _MASK_BYTES)
        return line.decode() if self._text else line


_MASK_BYTES = MASK.encode()
_SCALARS = (bool, float, type(None), BaseException)
_MAX_DEPTH = 16


def _plain(value: Any, depth: int) -> Any:
    """``value`` with whatever a renderer may refuse made text; exceptions kept as they are
    (the renderers format them)."""
    if isinstance(value, _SCALARS) or (isinstance(value, int) and -(2**63) <= value < 2**64):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if depth < _MAX_DEPTH and isinstance(value, dict):
        return {_plain_key(k): _plain(v, depth + 1) for k, v in value.items()}
    if depth < _MAX_DEPTH and isinstance(value, list | tuple):
        return [_plain(item, depth + 1) for item in value]
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}: repr failed>"
    return text.encode("utf-8", "backslashreplace").decode()


def _plain_key(key: Any) -> str:
    text = key if isinstance(key, str) else _plain(key, _MAX_DEPTH)
    return str(text).encode("utf-8", "backslashreplace").decode()


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


def _withhold_auth(record: logging.LogRecord) -> bool:
    """aiokafka logs every request at DEBUG, SASL authentication ones with their payload
    (user and password): those arguments never reach a line, whatever the scrubber knows."""
    if record.name.startswith("aiokafka") and isinstance(record.args, tuple):
        record.args = tuple(
            "<SASL exchange withheld>" if "Sasl" in type(arg).__name__ else arg
            for arg in record.args
        )
    return True


def _quiet_bad_requests(record: logging.LogRecord) -> bool:
    """aiohttp logs a request it cannot parse (a scanner's garbage, an oversized header)
    at ERROR, with a stack and the request's first bytes, after answering it 400: on an
    endpoint facing the internet anyone could raise error lines at will. The 400 is the
    outcome; at DEBUG it stays as one line naming the error, else it is dropped."""
    error = record.exc_info[1] if record.exc_info else None
    if not record.name.startswith("aiohttp.server") or not any(
        kind.__name__ == "HttpProcessingError" for kind in type(error).__mro__
    ):
        return True
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        return False
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    record.msg, record.args, record.exc_info = "bad_http_request: %s", (type(error).__name__,), None
    return True


class _SinkHandler(logging.Handler):
    """stdlib records into the same sink: one stream, one order."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _sink.msg(self.format(record).encode())
        except Exception:  # a logging failure must not take the caller down
            self.handleError(record)


_sink = _Sink()


@contextlib.contextmanager
def errors_muted(library: str) -> Iterator[None]:
    """Drop ``library``'s ERROR lines meanwhile (its INFO lines stay): aiokafka logs each
    failed connection at ERROR, where one ``broker_unavailable`` line a try says it."""

    def keep(record: logging.LogRecord) -> bool:
        return not (record.name.startswith(library) and record.levelno >= logging.ERROR)

    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(keep)
