"""Handler time limits with one timer for all calls, not one per call.

``asyncio.timeout`` around every handler call schedules and cancels a timer per
record, the single largest cost on the hot path. Here a call is registered in a dict;
one task wakes every ``timeout / 4`` (at most every second) and cancels calls past
their deadline. A cancelled call is recognised by its task and turned back into a
``TimeoutError`` (``Task.uncancel``), so cancellation from elsewhere still propagates.
"""

from __future__ import annotations

import asyncio

__all__ = ["Watchdog"]


class Watchdog:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._runner: asyncio.Task[None] | None = None

    def watch(self) -> _Watch:
        """Around one handler call in the current task; raises TimeoutError when late."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None  # always called from a coroutine
        self._deadlines[task] = loop.time() + self.timeout
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._patrol())
        return _Watch(self, task)

    def _end(self, task: asyncio.Task[object], cancelled: bool) -> None:
        self._deadlines.pop(task, None)
        if cancelled and task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            raise TimeoutError(f"handler ran past its {self.timeout:g}s limit") from None

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


class _Watch:
    """One watched call (a class, not ``@contextmanager``: it runs once per handler call)."""

    __slots__ = ("_task", "_watchdog")

    def __init__(self, watchdog: Watchdog, task: asyncio.Task[object]) -> None:
        self._watchdog = watchdog
        self._task = task

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        # A cancellation the watchdog caused becomes a TimeoutError; any other propagates.
        self._watchdog._end(self._task, kind is asyncio.CancelledError)
