"""Handlers the tests put in routes as ``tests.handlers:NAME`` (also in daemon subprocesses).

Their behaviour is steered by environment variables so a daemon process can be
configured from the test without code of its own.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from consumer import DONE, Context, Event, Outcome

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
