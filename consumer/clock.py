"""Time as one injected object: the loop's monotonic clock, the wall clock, and sleeping.

Everything that decides by time (commit intervals, retry budgets, due times of retry
tiers, quota windows) takes a :class:`Clock`, so a test drives time by hand
(``consumer.testing.ManualClock``) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: intervals, deadlines, durations."""
        ...

    def wall(self) -> float:
        """Epoch seconds: times written to records and read by other processes."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The process's clocks."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
