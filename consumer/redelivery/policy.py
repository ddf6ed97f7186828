"""Retry policy as plain functions: which failures are worth another call, how long to
wait in process, and which delayed-retry tier takes a record next."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import aiohttp

from consumer.redelivery.topology import Tier

__all__ = ["backoff", "is_permanent", "is_transient", "next_tier"]

_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    aiohttp.ClientConnectionError,
    aiohttp.ServerTimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Timeouts, connection errors, and anything a client marks ``retryable``."""
    return isinstance(exc, _TRANSIENT) or getattr(exc, "retryable", False) is True


def is_permanent(exc: BaseException) -> bool:
    """An exception that says no retry can help (``permanent = True``: a VOD answer such
    as an unknown asset or an invalid parameter): dead-lettered at once."""
    return getattr(exc, "permanent", False) is True


def backoff(
    attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempt-1)))."""
    ceiling: float = min(cap, base * 2 ** (attempt - 1))
    return rng() * ceiling


def next_tier(tiers: Sequence[Tier], current: int, after: float | None) -> Tier | None:
    """The tier a retry goes to: always a later one than ``current`` (so retries end), and
    the first whose delay covers ``after``; None when no tier is left."""
    later = [tier for tier in tiers if tier.index > current]
    if not later:
        return None
    if after is not None:
        for tier in later:
            if tier.delay >= after:
                return tier
    return later[0] if after is None else later[-1]
