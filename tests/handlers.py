"""Handlers the tests put in routes as ``tests.handlers:NAME`` (also in daemon subprocesses).

Their behaviour is steered by environment variables so a daemon process can be
configured from the test without code of its own.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from consumer import DONE, Context, Event, Failed, Outcome
from consumer.outcomes import Retry

_active: set[str] = set()


async def random_delay(event: Event, ctx: Context) -> Outcome:
    """Sleep 0..TEST_MAX_DELAY_MS (default 5) ms: work that finishes out of order."""
    await asyncio.sleep(random.uniform(0, float(os.environ.get("TEST_MAX_DELAY_MS", "5")) / 1000))
    return DONE


async def stall_marked(event: Event, ctx: Context) -> Outcome:
    """Assets named ``stall*`` hang for TEST_STALL_S seconds (default 3600); others are quick."""
    if (event.asset_id or "").startswith("stall"):
        await asyncio.sleep(float(os.environ.get("TEST_STALL_S", "3600")))
    else:
        await asyncio.sleep(float(os.environ.get("TEST_DELAY_MS", "0")) / 1000)
    return DONE


async def probe(event: Event, ctx: Context) -> Outcome:
    """Record when this asset's handler ran and whether another call of it was running."""
    asset = event.asset_id or ""
    overlapped = asset in _active
    _active.add(asset)
    started = time.monotonic_ns()
    try:
        await asyncio.sleep(float(os.environ.get("TEST_DELAY_MS", "10")) / 1000)
    finally:
        _active.discard(asset)
    ctx.annotate(started_ns=started, ended_ns=time.monotonic_ns(), overlapped=overlapped)
    return DONE


async def retry_once(event: Event, ctx: Context) -> Outcome:
    """Ask for a delayed retry on the first call (TEST_RETRY_AFTER s), succeed after."""
    if ctx.attempt == 1:
        return Retry(
            "thumbnails still processing", after=float(os.environ.get("TEST_RETRY_AFTER", "1"))
        )
    return DONE


async def gives_up(event: Event, ctx: Context) -> Outcome:
    return Failed("asset is gone")


async def gated_failure(event: Event, ctx: Context) -> Outcome:
    """Fail permanently, but only once the file TEST_GATE_FILE exists."""
    gate = Path(os.environ["TEST_GATE_FILE"])
    ctx.log.info("gate_waiting")
    # The gate is opened by another process (the test), so it is a file, polled.
    while not gate.exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.05)
    return Failed("asset is gone")


async def leaks_secret(event: Event, ctx: Context) -> Outcome:
    """Fail with an exception whose text quotes TEST_LEAKED (a configured secret)."""
    raise PermissionError(f"token {os.environ['TEST_LEAKED']} was refused")


async def cancels_itself(event: Event, ctx: Context) -> Outcome:
    """Assets ending in 3 or 7 raise CancelledError of their own (not a cancellation), the
    rest a BaseException subclass every tenth, else done."""
    asset = event.asset_id or ""
    if asset.endswith(("3", "7")):
        raise asyncio.CancelledError("the handler's own")
    if asset.endswith("0"):
        raise SystemExit("a handler must not end the daemon")
    await asyncio.sleep(0)
    return DONE
