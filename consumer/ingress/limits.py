"""What keeps the ingest bounded: requests at once (a gate), requests per second per
source (token buckets), and who the source is."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from aiohttp import web

from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.ingress.refusal import Refused

__all__ = ["Gate", "RateLimiter", "read_within", "source_of"]

MAX_SOURCES = 10_000  # buckets kept; the least recently seen source is forgotten first


class Gate:
    """At most ``limit`` holders at once; no waiting (the sender retries a 503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def enter(self) -> bool:
        if self.held >= self.limit:
            return False
        self.held += 1
        return True

    def leave(self) -> None:
        self.held -= 1


class RateLimiter:
    """A token bucket per source: ``rate`` tokens a second, holding at most ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Clock = SYSTEM_CLOCK,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def allow(self, source: str) -> bool:
        now = self._clock.monotonic()
        tokens, at = self._buckets.pop(source, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        allowed = tokens >= 1
        self._buckets[source] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return allowed


def source_of(request: web.Request, trust_forwarded_for: bool) -> str:
    """The sender's address: the peer, or (behind a trusted proxy) the last address of
    X-Forwarded-For, the one that proxy appended."""
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.remote or "unknown"


async def read_within(request: web.Request, seconds: float) -> bytes:
    """The body, if it arrives within ``seconds``: a sender trickling it in (or never
    finishing) would hold its place among ``ingest.max_concurrent`` for as long as it
    liked. A sender gone before its body arrived is its doing, not a bug of ours."""
    try:
        return await asyncio.wait_for(request.read(), max(seconds, 0.0))
    except TimeoutError:
        # 5xx: SMN drops a notification answered 4xx, and a slow network is no reason to.
        raise Refused(503, "incomplete", "body not received in time") from None
    except ConnectionError:
        raise Refused(400, "incomplete", "connection lost before the body arrived") from None
