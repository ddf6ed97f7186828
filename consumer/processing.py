"""One record's way through: decoded event -> route -> handlers -> one outcome line.

Every path ends in exactly one ``record_processed`` line; nothing here raises
for a bad record or a failing handler (only cancellation goes through).
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from consumer.engine import Work
from consumer.errors import IgnoredRecord, RecordError
from consumer.events import Event
from consumer.handlers import Clients, Context, RecordMeta
from consumer.outcomes import Failed, Handover, Outcome, Skipped
from consumer.routing import Route, Router

__all__ = ["Pipeline"]


class Pipeline:
    def __init__(
        self, router: Router, clients: Clients, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        self._router = router
        self._clients = clients
        self._log = log

    async def process(self, work: Work) -> Outcome:
        started = time.perf_counter()
        record, decoded = work.record, work.decoded
        context = work.context()
        notes: dict[str, Any] = {}
        handler: str | None = None
        error: BaseException | None = None
        if isinstance(decoded, RecordError):
            outcome: Outcome = (
                Skipped(decoded.reason)
                if isinstance(decoded, IgnoredRecord)
                else Failed(decoded.reason, error=type(decoded).__name__)
            )
        else:
            route = self._router.route(decoded)
            if route is None:
                outcome = Skipped(
                    f"no route for event_type={decoded.event_type} status={decoded.status} "
                    f"cover_type={decoded.cover_type}"
                )
            else:
                meta = RecordMeta(
                    record.topic, record.partition, record.offset, record.key, record.timestamp
                )
                handler, outcome, error = await self._run_route(
                    route, decoded, meta, context, notes
                )
        # Failures log at error level so alerting on level alone catches them.
        emit = self._log.error if isinstance(outcome, Failed) else self._log.info
        # Handler notes first: the record's context and outcome must win over a same-named note.
        fields: dict[str, Any] = {
            **notes,
            **context,
            "outcome": outcome.kind,
            "handler": handler,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "reason": outcome.reason,
        }
        if isinstance(outcome, Failed) and outcome.error:
            fields["error"] = outcome.error
        if error is not None:
            fields["exc_info"] = error
        emit("record_processed", **fields)
        return outcome

    async def _run_route(
        self,
        route: Route,
        event: Event,
        meta: RecordMeta,
        context: dict[str, Any],
        notes: dict[str, Any],
    ) -> tuple[str, Outcome, BaseException | None]:
        outcome: Outcome = Skipped("route has no handlers")
        name = ""
        for step in route.steps:
            name = step.name
            ctx = Context(self._log, {**context, "handler": name}, meta, self._clients, notes)
            try:
                outcome = await step.handler(event, ctx)
            except Exception as exc:
                return name, Failed(f"{type(exc).__name__}: {exc}", type(exc).__name__), exc
            if not isinstance(outcome, Outcome):  # user code may return anything
                return (
                    name,
                    Failed(f"handler returned {type(outcome).__name__}, not an outcome"),
                    None,
                )
            if not isinstance(outcome, Handover):
                return name, outcome, None
        return name, Failed(f"every handler handed over; last: {outcome.reason}"), None
