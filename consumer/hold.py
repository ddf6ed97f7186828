"""Why the daemon takes no new records, in one place.

Several parts can stop consumption: the dead-letter guard (until a restart), the VOD
circuit (until a probe call passes), shutdown, a record the pipeline could not finish.
Each sets its named :class:`Reason`; flow control pauses every partition while any
reason is set, ``/readyz`` answers 503 naming them, and a record whose handler met a
systemic failure waits until that failure's reason clears.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable

__all__ = ["Hold", "Reason"]


class Reason(enum.Enum):
    GUARD = "dead-letter guard tripped"
    CIRCUIT = "VOD circuit open"
    SHUTDOWN = "shutting down"
    STUCK = "a record could not be finished"


class Hold:
    def __init__(self) -> None:
        self._reasons: dict[Reason, str] = {}
        self._cleared: dict[Reason, asyncio.Event] = {}
        self._listeners: list[Callable[[], None]] = []

    def set(self, reason: Reason, detail: str = "") -> bool:
        """Hold for ``reason``; True if it was not held for it already."""
        if reason in self._reasons:
            return False
        self._reasons[reason] = detail
        self._event(reason).clear()
        self._changed()
        return True

    def clear(self, reason: Reason) -> bool:
        """Stop holding for ``reason``; True if it was held for it."""
        if self._reasons.pop(reason, None) is None:
            return False
        self._event(reason).set()
        self._changed()
        return True

    def __contains__(self, reason: Reason) -> bool:
        return reason in self._reasons

    def __bool__(self) -> bool:
        return bool(self._reasons)

    def why(self) -> str | None:
        """Every reason held, with its detail; None when nothing holds."""
        if not self._reasons:
            return None
        return "; ".join(
            f"{reason.value}: {detail}" if detail else reason.value
            for reason, detail in self._reasons.items()
        )

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a reason is set or cleared (e.g. to wake the loop)."""
        self._listeners.append(listener)

    async def until_clear(self, reason: Reason) -> None:
        """Return once ``reason`` is not held (at once if it is not)."""
        await self._event(reason).wait()

    def _event(self, reason: Reason) -> asyncio.Event:
        event = self._cleared.get(reason)
        if event is None:
            event = self._cleared[reason] = asyncio.Event()
            if reason not in self._reasons:
                event.set()
        return event

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()
