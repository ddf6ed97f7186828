"""consumer.logs: one JSON/console pipeline for structlog and stdlib loggers, secrets scrubbed.

Output goes to a text wrapper over a ``BytesIO``: the same shape as ``sys.stdout``
(structlog's JSON writes bytes to ``.buffer``, stdlib handlers write text).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.typing import FilteringBoundLogger

from consumer import logs
from consumer.config import LogSettings
from consumer.logs import MASK


class Output:
    """A stdout-like stream: text wrapper (for stdlib) over a byte buffer (for structlog)."""

    def __init__(self) -> None:
        self.raw = io.BytesIO()
        self.stream = io.TextIOWrapper(self.raw, encoding="utf-8", write_through=True)

    def text(self) -> str:
        self.stream.flush()
        return self.raw.getvalue().decode("utf-8")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def out() -> Output:
    return Output()


@pytest.fixture
def secret() -> str:
    # Unique per test: registered secrets stay registered for the whole process.
    return f"S3cr3t-{uuid.uuid4().hex}"


def setup(
    out: Output,
    *,
    format: Literal["json", "console"] = "json",
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO",
    secrets: tuple[str, ...] = (),
) -> FilteringBoundLogger:
    logs.configure(LogSettings(format=format, level=level), secrets=secrets, stream=out.stream)
    return logs.get_logger()


def _fail(exc: Exception) -> NoReturn:
    raise exc


def only(out: Output) -> dict[str, Any]:
    records = out.records()
    assert len(records) == 1, out.text()
    return records[0]


# --- rendering ---------------------------------------------------------------------------


def test_json_each_call_is_one_json_line_with_event_level_timestamp_and_context(
    out: Output,
) -> None:
    log = setup(out).bind(asset_id="a-1")

    log.info("cover_checked", attempt=2)
    log.warning("cover_stale")

    lines = out.lines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "cover_checked"
    assert first["level"] == "info"
    assert first["asset_id"] == "a-1"
    assert first["attempt"] == 2
    assert second["event"] == "cover_stale"
    assert second["level"] == "warning"
    assert second["asset_id"] == "a-1"
    stamp = datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)


def test_console_format_is_human_readable_text_not_json() -> None:
    stream = io.StringIO()
    logs.configure(LogSettings(format="console"), stream=stream)

    logs.get_logger().info("cover_checked", asset_id="a-1")

    text = stream.getvalue()
    assert "cover_checked" in text
    assert "asset_id" in text
    assert "a-1" in text
    with pytest.raises(ValueError, match=r"Expecting value|Extra data"):
        json.loads(text)


@pytest.mark.parametrize("library", ["aiokafka.consumer", "aiohttp.client"])
def test_stdlib_library_logger_renders_through_the_same_json_pipeline(
    out: Output, library: str
) -> None:
    setup(out)

    logging.getLogger(library).warning("x %s", 1)

    line = only(out)
    assert line["event"] == "x 1"
    assert line["level"] == "warning"
    assert line["logger"] == library
    assert "timestamp" in line
    assert not any(key.startswith("_") for key in line)  # structlog's internals removed


def test_stdlib_and_structlog_lines_interleave_in_call_order(out: Output) -> None:
    log = setup(out)

    log.info("first")
    logging.getLogger("aiokafka.consumer").warning("second")
    log.info("third")

    assert [line["event"] for line in out.records()] == ["first", "second", "third"]


def test_level_warning_drops_info_lines_from_structlog_and_stdlib(out: Output) -> None:
    log = setup(out, level="WARNING")

    log.info("dropped")
    logging.getLogger("aiokafka.consumer").info("dropped too")
    log.warning("kept")
    logging.getLogger("aiokafka.consumer").warning("kept too")

    assert [line["event"] for line in out.records()] == ["kept", "kept too"]


# --- tracebacks ----------------------------------------------------------------------------


def _fails_with_a_local() -> None:
    cache_key = "LOCAL-VALUE-c0ffee-not-a-secret"
    raise ValueError(f"cannot fetch cover ({len(cache_key)} char key)")


def test_json_traceback_carries_the_exception_but_no_local_variables(out: Output) -> None:
    log = setup(out)

    try:
        _fails_with_a_local()
    except ValueError:
        log.exception("cover_failed")

    text = out.text()
    assert "cannot fetch cover (31 char key)" in text
    assert "_fails_with_a_local" in text  # the frame is there
    assert "LOCAL-VALUE-c0ffee" not in text
    assert "cache_key" not in text
    exception = only(out)["exception"]
    assert exception[0]["exc_type"] == "ValueError"
    assert all("locals" not in frame for frame in exception[0]["frames"])


def test_stdlib_exception_traceback_is_rendered_as_json_without_locals(out: Output) -> None:
    setup(out)

    try:
        _fails_with_a_local()
    except ValueError:
        logging.getLogger("aiohttp.client").exception("request failed")

    line = only(out)
    assert line["event"] == "request failed"
    assert line["level"] == "error"
    assert line["exception"][0]["exc_type"] == "ValueError"
    assert "LOCAL-VALUE-c0ffee" not in out.text()


# --- secrets -------------------------------------------------------------------------------


def test_secret_in_a_field_value_is_masked(out: Output, secret: str) -> None:
    log = setup(out, secrets=(secret,))

    log.info("connecting", password=secret, url=f"https://user:{secret}@host/")

    line = only(out)
    assert secret not in out.text()
    assert line["password"] == MASK
    assert line["url"] == f"https://user:{MASK}@host/"


def test_secret_inside_the_event_string_is_masked(out: Output, secret: str) -> None:
    log = setup(out, secrets=(secret,))

    log.info(f"login with {secret} failed")

    assert secret not in out.text()
    assert only(out)["event"] == f"login with {MASK} failed"


def test_secret_nested_in_a_dict_is_masked(out: Output, secret: str) -> None:
    log = setup(out, secrets=(secret,))

    log.info("config", kafka={"sasl": {"password": secret, "user": "cover"}}, seen=[secret])

    line = only(out)
    assert secret not in out.text()
    assert line["kafka"] == {"sasl": {"password": MASK, "user": "cover"}}
    assert line["seen"] == [MASK]


def test_secret_in_a_logged_exception_message_and_traceback_is_masked(
    out: Output, secret: str
) -> None:
    log = setup(out, secrets=(secret,))

    try:
        _fail(PermissionError(f"broker refused password {secret}"))
    except PermissionError:
        log.exception("auth_failed")

    line = only(out)
    assert secret not in out.text()
    assert line["exception"][0]["exc_value"] == f"broker refused password {MASK}"


def test_secret_in_a_stdlib_logger_message_is_masked(out: Output, secret: str) -> None:
    setup(out, secrets=(secret,))

    logging.getLogger("aiokafka.conn").error("SASL auth with %s rejected", secret)

    assert secret not in out.text()
    assert only(out)["event"] == f"SASL auth with {MASK} rejected"


def test_secret_in_a_stdlib_exception_traceback_is_masked(out: Output, secret: str) -> None:
    setup(out, secrets=(secret,))

    try:
        _fail(ConnectionError(f"token {secret} expired"))
    except ConnectionError:
        logging.getLogger("aiohttp.client").exception("request failed")

    assert secret not in out.text()
    assert only(out)["exception"][0]["exc_value"] == f"token {MASK} expired"


def test_secret_added_after_configure_is_masked_from_then_on(out: Output, secret: str) -> None:
    log = setup(out)

    logs.add_secret(secret)
    log.info("token_refreshed", token=secret)
    logging.getLogger("aiohttp.client").warning("using %s", secret)

    assert secret not in out.text()
    assert [line.get("token", line["event"]) for line in out.records()] == [
        MASK,
        f"using {MASK}",
    ]


def test_secret_is_masked_in_console_format_too(secret: str) -> None:
    stream = io.StringIO()
    logs.configure(LogSettings(format="console"), secrets=[secret], stream=stream)

    logs.get_logger().info(f"event with {secret}", password=secret)
    logging.getLogger("aiokafka.conn").warning("stdlib with %s", secret)

    text = stream.getvalue()
    assert secret not in text
    assert text.count(MASK) == 3


def test_secret_with_json_escaped_characters_is_masked(out: Output) -> None:
    secret = f'pa"ss\\w0rd-{uuid.uuid4().hex[:8]}'
    log = setup(out, secrets=(secret,))

    log.info("connecting", password=secret)

    assert only(out)["password"] == MASK


def test_secret_containing_a_shorter_secret_is_masked_whole(out: Output) -> None:
    # Set order follows string hashes: with 24 pairs, at least one pair is met
    # shorter-first unless the odds (2**-24) say otherwise.
    base = uuid.uuid4().hex[:6]
    shorter = [f"{base}{i:02d}" for i in range(24)]
    longer = [f"{short}-tail-{uuid.uuid4().hex[:6]}" for short in shorter]
    log = setup(out, secrets=(*shorter, *longer))

    log.info("credentials", **{f"p{i}": value for i, value in enumerate(longer)})

    line = only(out)
    assert [line[f"p{i}"] for i in range(24)] == [MASK] * 24


@pytest.mark.parametrize("quote", ["'", '"', "'\""])
def test_a_secret_inside_a_logged_bytes_repr_is_masked(out: Output, quote: str) -> None:
    # How aiokafka logs a SASL/PLAIN payload at DEBUG: the repr of a bytes object.
    secret = f"S3cr3t-\u00e9-{quote}q\\z-{uuid.uuid4().hex[:8]}"
    log = setup(out, secrets=(secret,))
    payload = b"user\x00user\x00" + secret.encode()

    log.info(f"request {payload!r}")

    assert "S3cr3t" not in out.text()
    assert only(out)["event"].endswith(f"\\x00user\\x00{MASK}{repr(payload)[-1]}")


class SaslAuthenticateRequest_v1:  # named as aiokafka's struct is
    def __repr__(self) -> str:
        return "SaslAuthenticateRequest_v1(sasl_auth_bytes=b'user\\x00user\\x00pw-not-known')"


def test_aiokafka_sasl_exchanges_never_reach_a_line_even_at_debug(out: Output) -> None:
    setup(out, level="DEBUG")

    logging.getLogger("aiokafka.conn").debug(
        "Request to %s:%d %d: %s", "broker", 9092, 7, SaslAuthenticateRequest_v1()
    )

    line = only(out)
    assert "pw-not-known" not in out.text()
    assert line["event"] == "Request to broker:9092 7: <SASL exchange withheld>"


def test_scrub_masks_known_secrets_in_text_written_outside_the_log(secret: str) -> None:
    logs.add_secret(secret)

    assert logs.scrub(f"RuntimeError: token {secret} refused") == (
        f"RuntimeError: token {MASK} refused"
    )


def test_json_to_a_text_stream_without_buffer_writes_lines() -> None:
    stream = io.StringIO()
    logs.configure(LogSettings(format="json"), stream=stream)

    logs.get_logger().info("cover_checked")

    assert json.loads(stream.getvalue())["event"] == "cover_checked"


def test_short_values_are_not_treated_as_secrets(out: Output) -> None:
    # Documented in add_secret: fewer than 4 characters would mask ordinary words.
    log = setup(out, secrets=("abc",))

    log.info("abc")

    assert only(out)["event"] == "abc"


# --- output ------------------------------------------------------------------------------


async def test_lines_of_one_loop_turn_are_written_together_at_the_next(out: Output) -> None:
    log = setup(out)
    log.info("first")
    log.info("second")
    assert out.lines() == []

    await asyncio.sleep(0)

    assert [r["event"] for r in out.records()] == ["first", "second"]


async def test_flush_writes_pending_lines_at_once(out: Output) -> None:
    log = setup(out)
    log.info("pending")
    logging.getLogger("aiokafka").warning("from the library")

    logs.flush()

    assert [r["event"] for r in out.records()] == ["pending", "from the library"]


def test_without_a_running_loop_each_line_is_written_at_once(out: Output) -> None:
    setup(out).info("now")
    assert [r["event"] for r in out.records()] == ["now"]


def test_a_flush_left_scheduled_on_a_closed_loop_does_not_hold_back_the_next(
    out: Output,
) -> None:
    log = setup(out)
    loop = asyncio.new_event_loop()
    loop.call_soon(log.info, "first")  # schedules a flush for the next turn...
    loop.call_soon(loop.stop)  # ...which never comes
    loop.run_forever()
    loop.close()

    async def second() -> None:
        log.info("second")

    asyncio.run(second())

    assert [r["event"] for r in out.records()] == ["first", "second"]


def test_lines_from_threads_stay_whole(out: Output) -> None:
    log = setup(out)

    def write() -> None:
        for i in range(1000):
            log.info("threaded", i=i)

    # Switch threads as often as possible, so an unguarded buffer would split lines.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=write) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    assert len(out.records()) == 8000  # each line parses: none split or interleaved


class _ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


UNRENDERABLE = {
    "an int past 64 bits": 2**70,
    "a lone surrogate": "bad \ud800 text",
    "a repr that raises": _ReprRaises(),
    "a cycle": _cycle(),
    "a key that is not text": {1: "one"},
}


@pytest.mark.parametrize("what", sorted(UNRENDERABLE))
@pytest.mark.parametrize("format", ["json", "console"])
def test_a_value_the_renderer_cannot_take_still_gives_the_line_and_never_raises(
    out: Output, what: str, format: Literal["json", "console"], secret: str
) -> None:
    # A handler's annotation or its own log call with such a value raised out of the
    # logger: the outcome line was never written and the record stuck (consumption held).
    log = setup(out, format=format, secrets=(secret,))

    log.info("record_processed", outcome="done", value=UNRENDERABLE[what], token=secret)

    text = out.text()
    assert "record_processed" in text
    assert secret not in text
    if format == "json":
        line = only(out)
        assert (line["event"], line["outcome"], line["token"]) == ("record_processed", "done", MASK)
        assert "value" in line


def test_scrub_takes_text_with_a_lone_surrogate(secret: str) -> None:
    # A handler's exception message may hold one: scrubbing its dead-letter reason raised.
    logs.add_secret(secret)

    assert logs.scrub(f"bad \ud800 {secret}") == f"bad \ud800 {MASK}"


# --- what the HTTP servers' library logs ---------------------------------------------------


async def _ask_raw(request: bytes) -> bytes:
    """Send ``request`` as is to an aiohttp server whose one handler raises; its answer."""

    async def fails(_: web.Request) -> web.Response:
        raise RuntimeError("the handler broke")

    app = web.Application()
    app.router.add_get("/fails", fails)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)  # as the daemon's and the ingest's servers
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        # To the end: the server closes once it has answered, and it logs before answering.
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        await server.close()
    logs.flush()
    return answer


OVERSIZED = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"


async def test_a_request_aiohttp_cannot_parse_is_answered_400_and_logs_no_error(
    out: Output,
) -> None:
    setup(out, level="INFO")

    answer = await _ask_raw(OVERSIZED)

    assert answer.startswith(b"HTTP/1.0 400")
    assert out.records() == []


async def test_at_debug_a_request_aiohttp_cannot_parse_is_one_line_naming_the_error(
    out: Output,
) -> None:
    setup(out, level="DEBUG")

    await _ask_raw(OVERSIZED)

    [line] = [r for r in out.records() if r.get("logger") == "aiohttp.server"]
    assert (line["event"], line["level"]) == ("bad_http_request: LineTooLong", "debug")
    assert "exception" not in line
    assert "aaaa" not in out.text()


async def test_a_handler_that_raises_is_still_an_error_line_with_its_exception(
    out: Output,
) -> None:
    setup(out, level="INFO")

    answer = await _ask_raw(b"GET /fails HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    assert answer.startswith(b"HTTP/1.1 500")
    [line] = out.records()
    assert line["level"] == "error"
    assert line["exception"][0]["exc_type"] == "RuntimeError"
