"""Trace context: a record's W3C ``traceparent`` on its outcome line, and, when asked for,
OpenTelemetry spans around its processing and each VOD call.

``trace_fields`` reads ``traceparent`` (and keeps nothing of a malformed one): its trace
id and parent span id go on the record's outcome line, so the line joins the producer's
trace. The header itself travels on with the record through the tiers, dead letters and
replays like any other. With ``tracing.enabled`` and ``opentelemetry-sdk`` installed,
``Tracer`` opens a consumer span per record (a child of the record's trace) and a client
span per VOD call (asyncio's context variables make it the record span's child).

Where the spans go is OpenTelemetry's own configuration: a tracer provider the embedding
application set, or else one made here from the standard environment:
``OTEL_TRACES_EXPORTER`` (``otlp``, the default, needs
``opentelemetry-exporter-otlp-proto-http``, part of the ``tracing`` extra, and reads
``OTEL_EXPORTER_OTLP_*``; ``console`` writes to stderr, never into the log on stdout;
``none``), ``OTEL_SERVICE_NAME`` (default ``cover-consumer``) and
``OTEL_RESOURCE_ATTRIBUTES``. Spans are batched and flushed at exit. Without the SDK or
with tracing off, every call here is a no-op costing one attribute lookup.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["TRACEPARENT", "Tracer", "trace_fields"]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# version-traceid-parentid-flags, lower-case hex; all-zero ids are invalid (W3C).
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def trace_fields(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """``{"trace_id", "span_id"}`` of a valid ``traceparent`` header, else ``{}``."""
    for key, value in headers or ():
        if key != TRACEPARENT or value is None:
            continue
        match = _TRACEPARENT.match(value.decode("ascii", "replace").strip())
        if match is None or match[1] == "ff" or match[2] == _ZERO_TRACE or match[3] == _ZERO_SPAN:
            return {}
        return {"trace_id": match[2], "span_id": match[3]}
    return {}


class Tracer:
    """Spans when enabled and the SDK is there; otherwise nothing at all."""

    def __init__(self, enabled: bool) -> None:
        self._tracer: Any = None
        self._propagate: Any = None
        #: Where the spans go, when active ("nowhere: ..." when they are made but not sent).
        self.destination = "nowhere"
        if not enabled:
            return
        try:
            from opentelemetry import trace
            from opentelemetry.propagate import extract
            from opentelemetry.sdk.trace import TracerProvider
        except ImportError:
            return  # asked for, not installed: the daemon says so at start (see ``active``)
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            self.destination = "the application's tracer provider"
        else:
            provider, self.destination = _provider_from_environment()
            trace.set_tracer_provider(provider)
        self._tracer = trace.get_tracer("cover-consumer")
        self._propagate = extract

    @property
    def active(self) -> bool:
        return self._tracer is not None

    @contextlib.contextmanager
    def record(
        self, headers: Sequence[tuple[str, bytes | None]] | None, **attributes: Any
    ) -> Iterator[None]:
        """A consumer span around one record's processing, continuing its trace."""
        if self._tracer is None:
            yield
            return
        carrier = {
            key: value.decode("ascii", "replace")
            for key, value in headers or ()
            if key in (TRACEPARENT, TRACESTATE) and value is not None
        }
        from opentelemetry.trace import SpanKind

        with self._tracer.start_as_current_span(
            "process record",
            context=self._propagate(carrier),
            kind=SpanKind.CONSUMER,
            attributes={k: v for k, v in attributes.items() if v is not None},
        ):
            yield

    @contextlib.contextmanager
    def vod_call(self, operation: str) -> Iterator[None]:
        """A client span around one VOD call, under the current record's span."""
        if self._tracer is None:
            yield
            return
        from opentelemetry.trace import SpanKind

        with self._tracer.start_as_current_span(f"VOD {operation}", kind=SpanKind.CLIENT):
            yield


def _provider_from_environment() -> tuple[Any, str]:
    """An SDK tracer provider exporting as ``OTEL_TRACES_EXPORTER`` says (see above), and
    where its spans go, for the daemon's start line."""
    import os
    import sys

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "cover-consumer"}))
    provider = TracerProvider(resource=resource)
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "none":
        return provider, "nowhere (OTEL_TRACES_EXPORTER=none)"
    if kind == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        return provider, "stderr (OTEL_TRACES_EXPORTER=console)"
    if kind != "otlp":
        return provider, f"nowhere: OTEL_TRACES_EXPORTER={kind} is not otlp, console or none"
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        return provider, "nowhere: opentelemetry-exporter-otlp-proto-http is not installed"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider, "OTLP over HTTP (OTEL_EXPORTER_OTLP_*)"
