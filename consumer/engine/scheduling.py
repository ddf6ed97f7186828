"""Keyed scheduling: items of one key run one at a time, in submission order;
items of different keys run concurrently, on a fixed pool of workers.

A worker takes a ready key and runs its queue to the end. It wakes one more
worker only when keys are still waiting, just before it may block, so
handlers that finish without really waiting run back to back with no task
switch per item, and a blocking handler lets the next worker take over.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["KeyedScheduler"]

T = TypeVar("T")


class KeyedScheduler(Generic[T]):
    def __init__(self, run: Callable[[T], Awaitable[None]], workers: int) -> None:
        # ``run`` must not raise: every item needs an outcome, so the caller catches.
        self._run = run
        self._size = workers
        self._queues: dict[Hashable, deque[T]] = {}  # every key with work, waiting or running
        self._ready: deque[Hashable] = deque()  # keys with work and no worker on them
        self._running: dict[Hashable, T] = {}
        self._parked: deque[asyncio.Future[None]] = deque()
        self._waking = False  # a parked worker was woken and has not run yet
        self._workers: list[asyncio.Task[None]] = []

    def submit(self, key: Hashable, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._ready.append(key)
            self._wake_one()
        queue.append(item)

    @property
    def active_keys(self) -> int:
        return len(self._queues)

    def running(self) -> list[T]:
        return list(self._running.values())

    def discard_waiting(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove items that have not started and match; return them (e.g. on revoke)."""
        dropped: list[T] = []
        for key, queue in list(self._queues.items()):
            keep = [item for item in queue if not predicate(item)]
            if len(keep) == len(queue):
                continue
            dropped.extend(item for item in queue if predicate(item))
            queue.clear()
            queue.extend(keep)
            if not queue and key not in self._running:
                del self._queues[key]
                self._ready.remove(key)
        return dropped

    async def cancel_all(self) -> list[T]:
        """Stop every worker; return the items that were running or waiting."""
        abandoned = list(self._running.values())
        for queue in self._queues.values():
            abandoned.extend(queue)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._queues.clear()
        self._ready.clear()
        self._running.clear()
        self._workers.clear()
        return abandoned

    def _wake_one(self) -> None:
        if self._waking:
            return  # the woken worker, once it runs, wakes the next if keys still wait
        while self._parked:
            parked = self._parked.popleft()
            if not parked.done():
                parked.set_result(None)
                self._waking = True
                return
        if len(self._workers) < self._size:
            self._workers.append(asyncio.create_task(self._work()))
            self._waking = True

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._waking = False
            while self._ready:
                key = self._ready.popleft()
                if self._ready and not self._waking:  # (checked here too: saves a call per key)
                    self._wake_one()  # help is on its way should this key's handler block
                queue = self._queues[key]
                while queue:
                    self._running[key] = item = queue.popleft()
                    await self._run(item)
                del self._running[key]
                del self._queues[key]
            parked = loop.create_future()
            self._parked.append(parked)
            await parked
