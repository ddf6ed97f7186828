"""consumer.tracing: a record's trace context read from its headers, and optional spans."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from consumer.tracing import Tracer, trace_fields

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
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OpenTelemetry allows no reset
    yield exporter
    provider.shutdown()


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
