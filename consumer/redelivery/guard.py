"""The dead-letter guard: stop before a broken deploy pours the stream into the DLQ.

It watches the last ``window`` final outcomes. A dead letter that would push their
dead-lettered share past ``threshold`` is not written: the guard trips, consumption
pauses, and that record waits unwritten and uncommitted until the process restarts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from consumer.hold import Hold, Reason

__all__ = ["DeadLetterGuard"]


class DeadLetterGuard:
    def __init__(
        self,
        window: int,
        threshold: float,
        min_records: int,
        on_trip: Callable[[str], None] = lambda why: None,
        hold: Hold | None = None,
    ) -> None:
        self._recent: deque[bool] = deque(maxlen=window)
        self._dead = 0
        self._threshold = threshold
        self._min_records = min_records
        self._on_trip = on_trip
        # Tripping sets the daemon's hold; nothing clears it but a restart.
        self.hold = hold if hold is not None else Hold()

    @property
    def tripped(self) -> bool:
        return Reason.GUARD in self.hold

    def observe(self, dead: bool) -> None:
        if not (dead or self._dead):  # nothing dead, in the window or now: the count stays 0
            self._recent.append(False)
            return
        if len(self._recent) == self._recent.maxlen and self._recent[0]:
            self._dead -= 1
        self._recent.append(dead)
        self._dead += dead

    def share_with_one_more(self) -> tuple[int, int]:
        """(dead, total) over the window if one more dead letter were added now."""
        full = len(self._recent) == self._recent.maxlen
        dead = self._dead + 1 - (1 if full and self._recent[0] else 0)
        return dead, len(self._recent) + (0 if full else 1)

    async def admit(self) -> None:
        """Return if one more dead letter is acceptable; else trip and wait for ever."""
        dead, total = self.share_with_one_more()
        if not self.tripped and (total < self._min_records or dead / total <= self._threshold):
            return
        if not self.tripped:
            why = f"{dead} of the last {total} records would be dead letters"
            self.hold.set(Reason.GUARD, why)
            self._on_trip(why)
        await self.hold.until_clear(Reason.GUARD)
