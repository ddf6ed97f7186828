"""A clock driven by hand, for tests of anything that takes a ``consumer.clock.Clock``."""

from __future__ import annotations

import asyncio

__all__ = ["ManualClock"]


class ManualClock:
    """Time moves only by :meth:`advance` or by :meth:`sleep`, which moves it at once.

    ``wall`` is ``wall_start`` plus the same elapsed time as ``monotonic``.
    """

    def __init__(self, now: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        self.now = now
        self._wall_offset = wall_start - now
        #: Every sleep asked for, in order.
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self._wall_offset

    def set_wall(self, epoch_seconds: float) -> None:
        """Make ``wall()`` read ``epoch_seconds`` now (``monotonic`` does not move)."""
        self._wall_offset = epoch_seconds - self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is
