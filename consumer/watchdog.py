"""Handler time limits with one timer for all calls, not one per call.

``asyncio.timeout`` around every handler call schedules and cancels a timer per
record, the single largest cost on the hot path. Here a call is registered in a dict;
one task wakes every ``timeout / 4`` (at most every second) and cancels calls past
their deadline. A cancelled call is recognised by its task and turned back into a
``TimeoutError`` (``Task.uncancel``), so cancellation from elsewhere still propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Watchdog"]


class Watchdog:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._runner: asyncio.Task[None] | None = None

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Around one handler call in the current task; raises TimeoutError when late."""
        task = asyncio.current_task()
        assert task is not None  # always called from a coroutine
        loop = asyncio.get_running_loop()
        self._deadlines[task] = loop.time() + self.timeout
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._patrol())
        try:
            yield
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            raise TimeoutError(f"handler ran past its {self.timeout:g}s limit") from None
        finally:
            self._deadlines.pop(task, None)

    async def _patrol(self) -> None:
        loop = asyncio.get_running_loop()
        while self._deadlines:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            now = loop.time()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[task]
                    self._expired.add(task)
                    task.cancel()
