"""consumer.watchdog.Watchdog: handler time limits with one timer for all calls."""

from __future__ import annotations

import asyncio

import pytest

from consumer.dispatch.watchdog import Watchdog


async def test_a_call_past_its_limit_raises_timeout_error_and_leaves_the_task_uncancelled() -> None:
    watchdog = Watchdog(timeout=0.02)

    with pytest.raises(TimeoutError, match=r"past its 0\.02s limit"):
        await watchdog.call(asyncio.Event().wait())

    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the task goes on normally
    await asyncio.sleep(0)  # and can still await


async def test_a_call_within_its_limit_is_untouched_and_forgotten() -> None:
    watchdog = Watchdog(timeout=5)

    assert await watchdog.call(asyncio.sleep(0, result="done")) == "done"

    assert watchdog._deadlines == {}  # nothing left to patrol


async def test_a_call_that_raises_is_forgotten_and_its_error_propagates() -> None:
    watchdog = Watchdog(timeout=5)

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad event")

    with pytest.raises(ValueError, match="bad event"):
        await watchdog.call(failing())

    assert watchdog._deadlines == {}


async def test_a_cancellation_from_elsewhere_still_propagates() -> None:
    watchdog = Watchdog(timeout=5)
    started = asyncio.Event()

    async def call() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(watchdog.call(call()))
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_handler_that_swallows_its_time_limit_leaves_later_cancellations_intact() -> None:
    watchdog = Watchdog(timeout=0.02)

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "kept going"  # user code may swallow a cancellation
        return "unreachable"

    into_next = asyncio.Event()

    async def worker() -> None:
        assert await watchdog.call(stubborn()) == "kept going"
        into_next.set()
        await watchdog.call(asyncio.Event().wait())  # the next call: a shutdown cancels it

    task = asyncio.create_task(worker())
    await into_next.wait()
    await asyncio.sleep(0)  # the worker is in its next call, well within its limit
    assert task.cancelling() == 0
    task.cancel()

    with pytest.raises(asyncio.CancelledError):  # not a TimeoutError
        await task
