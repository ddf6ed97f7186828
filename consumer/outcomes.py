"""What a handler says about an event, and what the record's final outcome is.

A route runs its handlers in order. ``Done`` and ``Skipped`` settle the event and
end the route; ``Handover`` passes the event to the next handler of the route
(a fallback chain: "I could not, let the next one try"); ``Retry`` asks to be
called again later; ``Failed`` is a permanent failure (the event is dead-lettered).

``Retried`` and ``DeadLettered`` are what the pipeline makes of those: the record
was handed durably to a retry tier or to the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

__all__ = [
    "DONE",
    "DeadLettered",
    "Done",
    "Failed",
    "Handover",
    "Outcome",
    "RecordOutcome",
    "Retried",
    "Retry",
    "Skipped",
]


@dataclass(frozen=True, slots=True)
class Done:
    """The event is handled."""

    kind: ClassVar[str] = "done"
    reason: ClassVar[None] = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing to do for this event (e.g. no route, or the cover is already there)."""

    reason: str
    kind: ClassVar[str] = "skipped"


@dataclass(frozen=True, slots=True)
class Handover:
    """This handler could not settle the event: the next handler of the route runs."""

    reason: str
    kind: ClassVar[str] = "handover"


@dataclass(frozen=True, slots=True)
class Failed:
    """A permanent failure; ``error`` names the exception class when one caused it."""

    reason: str
    error: str | None = None
    kind: ClassVar[str] = "failed"


@dataclass(frozen=True, slots=True)
class Retry:
    """Call this handler again later: in process if soon, else from a delayed-retry tier.

    ``after`` (seconds) is the earliest the next call is useful; None leaves it to the backoff.
    """

    reason: str
    after: float | None = None
    error: str | None = None
    kind: ClassVar[str] = "retry"

    def __post_init__(self) -> None:
        # A handler's arithmetic can give NaN (it made the wait vanish: max(nan, x) is nan)
        # or a negative wait, and an exception's retry_after any value at all; none of these
        # says when to come back, so the backoff decides.
        after = self.after
        if after is not None and not (isinstance(after, int | float) and after >= 0):
            object.__setattr__(self, "after", None)


@dataclass(frozen=True, slots=True)
class Retried:
    """The record was written to a delayed-retry tier (``topic``), due at ``due`` (epoch s)."""

    reason: str
    topic: str
    due: float
    kind: ClassVar[str] = "retried"


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """The record was written to the dead-letter topic."""

    reason: str
    error: str | None = None
    kind: ClassVar[str] = "dead_lettered"


Outcome = Done | Skipped | Handover | Failed | Retry
RecordOutcome = Done | Skipped | Retried | DeadLettered

DONE: Final = Done()
