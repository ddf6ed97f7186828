"""What a handler receives besides the event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog


@dataclass(frozen=True, slots=True)
class RecordMeta:
    """Where the event came from: the Kafka record's coordinates."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int


@dataclass(slots=True)
class Clients:
    """Clients shared by every handler of the process (one connection pool each)."""

    http: aiohttp.ClientSession


@dataclass(slots=True)
class Context:
    """One handler call's view: a logger bound to the record, its coordinates, the attempt.

    ``annotate`` adds fields to the record's outcome line (what the handler did,
    which API calls it made), so a handler need not log a line of its own.
    """

    log: structlog.typing.FilteringBoundLogger
    record: RecordMeta
    clients: Clients
    attempt: int = 1
    notes: dict[str, Any] = field(default_factory=dict)

    def annotate(self, **fields: Any) -> None:
        self.notes.update(fields)
