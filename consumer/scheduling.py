"""Keyed scheduling: items of one key run one at a time, in submission order;
items of different keys run concurrently.

One worker task exists per key that has work, never one per waiting item, so a
deep queue for one asset costs a deque entry per item and nothing else.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["KeyedScheduler"]

T = TypeVar("T")


class KeyedScheduler(Generic[T]):
    def __init__(self, run: Callable[[T], Awaitable[None]]) -> None:
        # ``run`` must not raise: every item needs an outcome, so the caller catches.
        self._run = run
        self._queues: dict[Hashable, deque[T]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._running: dict[Hashable, T] = {}

    def submit(self, key: Hashable, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._workers[key] = asyncio.create_task(self._drain(key, queue))
        queue.append(item)

    async def _drain(self, key: Hashable, queue: deque[T]) -> None:
        try:
            while queue:
                item = self._running[key] = queue.popleft()
                await self._run(item)
        finally:
            self._running.pop(key, None)
            del self._queues[key]
            del self._workers[key]

    @property
    def active_keys(self) -> int:
        return len(self._workers)

    def running(self) -> list[T]:
        return list(self._running.values())

    def discard_waiting(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove items that have not started and match; return them (e.g. on revoke)."""
        dropped: list[T] = []
        for queue in self._queues.values():
            keep = [item for item in queue if not predicate(item)]
            if len(keep) != len(queue):
                dropped.extend(item for item in queue if predicate(item))
                queue.clear()
                queue.extend(keep)
        return dropped

    async def cancel_all(self) -> list[T]:
        """Stop every worker; return the items that were running or waiting."""
        abandoned = list(self._running.values())
        for queue in self._queues.values():
            abandoned.extend(queue)
            queue.clear()
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return abandoned
