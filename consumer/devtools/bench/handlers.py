"""Handlers the benchmark puts in routes as ``consumer.devtools.bench_handlers:NAME``."""

from __future__ import annotations

import asyncio

from consumer import DONE, Context, Event, Outcome


async def sleep_100ms(event: Event, ctx: Context) -> Outcome:
    """Stands in for one remote API call: 100 ms of waiting and no CPU, so throughput is
    bounded by how many records the daemon keeps in flight, not by how fast it computes."""
    await asyncio.sleep(0.1)
    return DONE
