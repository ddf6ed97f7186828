"""What a handler says about an event, and what the record's final outcome is.

A route runs its handlers in order. ``Done`` and ``Skipped`` settle the event and
end the route; ``Handover`` passes the event to the next handler of the route
(a fallback chain: "I could not, let the next one try"); ``Failed`` is a
permanent failure. The next issues add ``Retry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

__all__ = ["DONE", "Done", "Failed", "Handover", "Outcome", "Skipped"]


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


Outcome = Done | Skipped | Handover | Failed

DONE: Final = Done()
