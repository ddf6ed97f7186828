"""Testing handlers and time-driven code: shipped API, like ``structlog.testing``.

``call_handler`` runs a handler as the pipeline would (a real ``Context``), against an
in-memory VOD (a ``SimState``: the simulator's assets, tasks, quotas and errors, no HTTP),
and returns what it answered and the VOD calls it made::

    from consumer.testing import SimState, call_handler

    vod = SimState()
    vod.add_asset("a1", snapshots=[5])
    result = await call_handler(fallback_cover, cover_event_bytes, vod=vod)
    assert result.outcome == DONE and [c.operation for c in result.vod_calls][-1] == "update_cover"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog

from consumer.config.vod import CoverSettings
from consumer.events import Event, decode
from consumer.handlers import Clients, Context, Handler, RecordMeta
from consumer.outcomes import Outcome
from consumer.testing.clock import ManualClock
from consumer.testing.vodops import MemoryVod
from consumer.testing.vodsim import Faults, Quotas, SimAsset, SimState, TaskDone
from consumer.vod.client import VodCall

__all__ = [
    "Faults",
    "HandlerResult",
    "ManualClock",
    "MemoryVod",
    "Quotas",
    "SimAsset",
    "SimState",
    "TaskDone",
    "call_handler",
]


@dataclass(frozen=True, slots=True)
class HandlerResult:
    outcome: Outcome
    #: Every VOD call the handler made, in order, failed ones included.
    vod_calls: list[VodCall]
    #: What the handler annotated: the extra fields of its record's outcome line.
    notes: dict[str, Any]
    #: What it keeps about the record for its next call: pass it to the next
    #: ``call_handler`` to play the record's next try (a quick retry or a retry tier).
    memo: dict[str, Any]


async def call_handler(
    handler: Handler,
    event: Event | bytes | Mapping[str, Any],
    *,
    vod: SimState | None = None,
    covers: CoverSettings | None = None,
    attempt: int = 1,
    last_try: bool = False,
    record: RecordMeta | None = None,
    memo: dict[str, Any] | None = None,
) -> HandlerResult:
    """Call ``handler`` once with ``event`` (an event, or its JSON as bytes or a mapping).

    With ``vod``, ``ctx.clients.vod`` answers from that state; without it the handler
    sees no VOD, as in a daemon configured without ``vod.endpoint``.
    """
    if isinstance(event, bytes):
        event = decode(event)
    elif isinstance(event, Mapping):
        event = decode(orjson.dumps(dict(event)))
    memory = MemoryVod(vod) if vod is not None else None
    notes: dict[str, Any] = {}
    kept = dict(memo or {})
    meta = record or RecordMeta("test-topic", 0, 0, None, 0)
    context = {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}
    async with aiohttp.ClientSession() as http:
        clients = Clients(http, memory, covers or CoverSettings())
        name = getattr(handler, "__name__", "handler")
        ctx = Context(
            structlog.get_logger(), context, meta, clients, notes, attempt, last_try, name, kept
        )
        outcome = await handler(event, ctx)
    return HandlerResult(outcome, list(memory.calls) if memory else [], notes, kept)
