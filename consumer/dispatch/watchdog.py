"""Handler time limits with one timer for all calls, not one per call.

``asyncio.timeout`` around every handler call schedules and cancels a timer per
record, the single largest cost on the hot path. Here a call is registered in a dict;
one task wakes every ``timeout / 4`` (at most every second) and cancels calls past
their deadline. A cancelled call is recognised by its task and turned back into a
``TimeoutError`` (``Task.uncancel``), so cancellation from elsewhere still propagates.
The call is awaited through :meth:`Watchdog.call` rather than wrapped in a context
manager: one coroutine frame costs less than an object and its enter and exit calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Watchdog"]

T = TypeVar("T")


class Watchdog:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._runner: asyncio.Task[None] | None = None

    async def call(self, call: Awaitable[T]) -> T:
        """Await one handler call in the current task; TimeoutError when it runs late."""
        task = asyncio.current_task()
        assert task is not None  # always called from a coroutine
        deadlines = self._deadlines
        # time.monotonic(), not loop.time(): one Python call less; the patrol reads it too.
        deadlines[task] = time.monotonic() + self.timeout
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._patrol())
        try:
            return await call
        except asyncio.CancelledError:
            # A cancellation the watchdog caused becomes a TimeoutError; any other propagates
            # (also one that came together with the watchdog's: still pending once ours is
            # taken back).
            if task not in self._expired:
                raise
            self._expired.discard(task)
            if task.uncancel():
                raise
            raise TimeoutError(f"handler ran past its {self.timeout:g}s limit") from None
        finally:
            deadlines.pop(task, None)  # gone already if the patrol cancelled the call
            if task in self._expired:
                # The handler swallowed the watchdog's cancellation: take it back, or the
                # worker's next shutdown or revoke would read as this call's time limit.
                self._expired.discard(task)
                task.uncancel()

    async def _patrol(self) -> None:
        while self._deadlines:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            now = time.monotonic()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[task]
                    self._expired.add(task)
                    task.cancel()
