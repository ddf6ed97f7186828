"""What a handler receives besides the event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from structlog.typing import FilteringBoundLogger

from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.config.vod import CoverSettings

if TYPE_CHECKING:
    import aiohttp

    from consumer.vod.api import VodApi

__all__ = ["Clients", "Context", "RecordMeta"]


class RecordMeta(NamedTuple):
    """Where the event came from: the Kafka record's coordinates (a tuple: made per record)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int
    #: When the record was first seen (epoch ms): its own timestamp, or its origin's when it
    #: came back from a retry tier.
    first_seen_ms: int = 0


@dataclass(slots=True)
class Clients:
    """What every handler of the process shares: clients (one connection pool each) and
    the handlers' own settings."""

    http: aiohttp.ClientSession
    vod: VodApi | None = None  # None when the config names no VOD endpoint
    covers: CoverSettings = field(default_factory=CoverSettings)


class Context:
    """One handler call's view: a logger bound to the record, its coordinates, the attempt.

    ``annotate`` adds fields to the record's outcome line (what the handler did,
    which API calls it made), so a handler need not log a line of its own. ``memo`` is
    what the record's handlers keep about it from one call to the next, quick retries and
    retry tiers included (it travels with the record as JSON: plain values, a few KB).
    """

    __slots__ = (
        "_bound",
        "_context",
        "_handler",
        "_logger",
        "attempt",
        "clients",
        "clock",
        "last_try",
        "memo",
        "notes",
        "record",
    )

    def __init__(
        self,
        logger: FilteringBoundLogger,
        context: dict[str, Any],
        record: RecordMeta,
        clients: Clients,
        notes: dict[str, Any],
        attempt: int = 1,
        last_try: bool = False,
        handler: str | None = None,
        memo: dict[str, Any] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._logger = logger
        self._context = context  # shared by the record's handler calls: never changed here
        self._handler = handler
        self._bound: FilteringBoundLogger | None = None
        self.record = record
        self.clients = clients
        self.notes = notes
        self.attempt = attempt
        #: No call of this handler comes after this one (quick retries and tiers used up):
        #: a Retry now ends as a hand-over or a dead letter.
        self.last_try = last_try
        self.memo = memo if memo is not None else {}
        self.clock = clock

    @property
    def handler(self) -> str | None:
        """The name the route calls this handler by."""
        return self._handler

    @property
    def log(self) -> FilteringBoundLogger:
        """Bound to the record's context on first use: most handlers never log a line."""
        if self._bound is None:
            self._bound = self._logger.bind(**self._context, handler=self._handler)
        return self._bound

    def annotate(self, **fields: Any) -> None:
        self.notes.update(fields)
