"""consumer.tracing: a record's trace context read from its headers, and optional spans."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from consumer import DONE, Context, Event, Outcome
from consumer.config import MatchSpec, RetrySettings, RouteSpec
from consumer.dispatch.pipeline import Pipeline
from consumer.dispatch.routing import Router
from consumer.handlers import Clients
from consumer.testing import ManualClock
from consumer.tracing import Tracer, _provider_from_environment, trace_fields
from tests.fakes import FakeRecord, FakeSink, cover_event, make_work, side_topics

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01".encode()


@pytest.mark.parametrize(
    ("headers", "fields"),
    [
        ([("traceparent", VALID)], {"trace_id": TRACE, "span_id": SPAN}),
        ([("tenant", b"x"), ("traceparent", VALID + b" ")], {"trace_id": TRACE, "span_id": SPAN}),
        ([("traceparent", f"00-{'0' * 32}-{SPAN}-01".encode())], {}),  # all-zero trace id
        ([("traceparent", f"00-{TRACE}-{'0' * 16}-01".encode())], {}),  # all-zero span id
        ([("traceparent", f"ff-{TRACE}-{SPAN}-01".encode())], {}),  # forbidden version
        ([("traceparent", b"00-nothex-x-01")], {}),
        ([("traceparent", None)], {}),
        ([], {}),
    ],
)
def test_trace_fields(headers: list[tuple[str, bytes | None]], fields: dict[str, str]) -> None:
    assert trace_fields(headers) == fields


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    # OpenTelemetry takes one global provider per process and never another, and a process
    # may run this module twice (mutmut does): the first run's provider is kept, unshut,
    # and each run adds an exporter of its own to it.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()


def test_a_record_span_continues_the_records_trace_and_vod_calls_are_its_children(
    spans: InMemorySpanExporter,
) -> None:
    spans.clear()
    tracer = Tracer(enabled=True)

    with (
        tracer.record([("traceparent", VALID)], topic="t", offset=7, asset_id=None),
        tracer.vod_call("show_asset_detail"),
    ):
        pass

    call, record = spans.get_finished_spans()
    assert record.name == "process record"
    assert format(record.context.trace_id, "032x") == TRACE
    assert format(record.parent.span_id, "016x") == SPAN  # type: ignore[union-attr]
    assert dict(record.attributes or {}) == {"topic": "t", "offset": 7}
    assert call.name == "VOD show_asset_detail"
    assert call.parent.span_id == record.context.span_id  # type: ignore[union-attr]


def test_a_disabled_tracer_makes_no_span(spans: InMemorySpanExporter) -> None:
    spans.clear()
    tracer = Tracer(enabled=False)

    with tracer.record([("traceparent", VALID)]), tracer.vod_call("x"):
        pass

    assert not tracer.active
    assert spans.get_finished_spans() == ()


def test_a_pipeline_with_tracing_makes_a_span_per_record_in_the_records_trace(
    spans: InMemorySpanExporter,
) -> None:
    spans.clear()
    router = Router.from_specs(
        [RouteSpec(match=MatchSpec(), handlers=["done"])], resolve_handler=lambda _: _done
    )
    pipeline = Pipeline(
        router,
        Clients(None),  # type: ignore[arg-type]  # the handler makes no HTTP call
        structlog.get_logger(),
        side_topics(FakeSink()),
        RetrySettings(),
        clock=ManualClock(),
        tracer=Tracer(enabled=True),
    )
    record = FakeRecord(
        "vod-cover-events", 1, 9, b"k", cover_event("a1"), headers=(("traceparent", VALID),)
    )

    asyncio.run(pipeline.process(make_work(record)))

    [span] = spans.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE
    assert dict(span.attributes or {}) == {
        "topic": "vod-cover-events",
        "partition": 1,
        "offset": 9,
        "asset_id": "a1",
    }


async def _done(event: Event, ctx: Context) -> Outcome:
    return DONE


@pytest.mark.parametrize(
    ("exporter", "destination"),
    [
        ("console", "stderr (OTEL_TRACES_EXPORTER=console)"),
        ("none", "nowhere (OTEL_TRACES_EXPORTER=none)"),
        ("jaeger", "nowhere: OTEL_TRACES_EXPORTER=jaeger is not otlp, console or none"),
        ("otlp", "OTLP over HTTP (OTEL_EXPORTER_OTLP_*)"),
    ],
)
def test_without_a_provider_of_the_application_one_is_made_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, exporter: str, destination: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", exporter)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)

    provider, where = _provider_from_environment()

    assert where == destination
    assert provider.resource.attributes["service.name"] == "cover-consumer"
    provider.shutdown()


def test_the_console_exporter_writes_spans_to_stderr_never_to_the_log_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "covers-eu")
    provider, _ = _provider_from_environment()

    with provider.get_tracer("t").start_as_current_span("process record"):
        pass
    provider.shutdown()  # flushes the batch

    out, err = capsys.readouterr()
    assert out == ""
    assert '"name": "process record"' in err
    assert '"service.name": "covers-eu"' in err
