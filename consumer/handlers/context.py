"""What a handler receives besides the event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from structlog.typing import FilteringBoundLogger

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
    which API calls it made), so a handler need not log a line of its own.
    """

    __slots__ = (
        "_bound",
        "_context",
        "_handler",
        "_logger",
        "attempt",
        "clients",
        "last_try",
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

    @property
    def log(self) -> FilteringBoundLogger:
        """Bound to the record's context on first use: most handlers never log a line."""
        if self._bound is None:
            self._bound = self._logger.bind(**self._context, handler=self._handler)
        return self._bound

    def annotate(self, **fields: Any) -> None:
        self.notes.update(fields)
