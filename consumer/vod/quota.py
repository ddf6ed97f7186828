"""A replica's share of a per-tenant VOD quota, with no shared infrastructure.

Each replica may make ``floor(quota * owned / total)`` calls in any sliding minute,
``owned/total`` being its share of the main topic's partitions. The floors of all
replicas add up to at most the quota. A share that grows takes effect only after a
full window, so a rebalance cannot let the old and the new owner of a partition
both spend it within the same minute. Calls are forgotten slightly after the window
ends, so network jitter cannot push two replicas' calls into one VOD window.
"""

from __future__ import annotations

import math
from collections import deque

from consumer.clock import SYSTEM_CLOCK, Clock

__all__ = ["QuotaWindow"]

WINDOW = 60.0


class QuotaWindow:
    def __init__(
        self,
        per_minute: int,
        clock: Clock = SYSTEM_CLOCK,
        window: float = WINDOW,
    ) -> None:
        self.per_minute = per_minute  # calls per window; VOD's window is a minute
        # A call is counted here when sent and by VOD when it arrives; network jitter
        # could squeeze one more into VOD's window. Forgetting calls a little late keeps
        # the two counts apart.
        self.window = window * 1.05 + 0.1
        self._clock = clock
        self._calls: deque[float] = deque()
        self._share = 0.0
        self._pending: tuple[float, float] | None = None  # (share, effective from)
        self._quiet_until = 0.0

    @property
    def limit(self) -> int:
        """Calls allowed in the current sliding minute."""
        if self._pending is not None and self._clock.monotonic() >= self._pending[1]:
            self._share, self._pending = self._pending[0], None
        return math.floor(self.per_minute * self._share)

    @property
    def spent(self) -> int:
        """Calls counted in the current sliding window."""
        now = self._clock.monotonic()
        return sum(1 for sent in self._calls if sent + self.window > now)

    def set_share(self, share: float) -> None:
        if share <= self._share:
            self._share, self._pending = share, None
        else:
            self._pending = (share, self._clock.monotonic() + self.window)
            if self._share == 0 and not self._calls:
                self._share, self._pending = share, None  # nothing spent yet: nothing to overlap

    def quiet(self, seconds: float) -> None:
        """No calls for ``seconds``: VOD answered that the tenant is over its quota."""
        self._quiet_until = max(self._quiet_until, self._clock.monotonic() + seconds)

    def take(self) -> float:
        """Count one call now if it fits in the sliding minute and return 0.0; else count
        nothing and return the seconds until one may fit. Taken at the moment of sending:
        a token that waited for a free connection would age, and tokens aged together go
        out together (VOD saw 60 calls in one second once it healed)."""
        now = self._clock.monotonic()
        while self._calls and self._calls[0] + self.window <= now:
            self._calls.popleft()
        if now < self._quiet_until:
            return self._quiet_until - now
        if len(self._calls) < self.limit:
            self._calls.append(now)
            return 0.0
        if self._calls:
            # A hair past the expiry: float time must not leave the call counted.
            return self._calls[0] + self.window - now + 1e-3
        return 1.0  # no share at all (no partitions yet): look again

    async def acquire(self) -> None:
        """Wait until one more call fits in the sliding minute, then count it."""
        while (wait := self.take()) > 0:
            await self._clock.sleep(wait)
