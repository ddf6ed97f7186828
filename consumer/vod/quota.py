"""A replica's share of a per-tenant VOD quota. It follows the work, needs no shared
infrastructure, and the replicas together never allow more than the quota in any window.

VOD refuses a tenant's call when Q of its calls arrived in the last W seconds. A replica
counts its own calls over W' = 1.05 W + 0.1 s (counted when sent, by VOD when they arrive:
the margin is for jitter) and sends one only while under its limit, made of:

* the reserve, Q // 10, one slice per partition of the main topic by index (slice i of P
  is floor(R(i+1)/P) - floor(Ri/P): the slices add up to the reserve), never lent, so a
  partition that turns busy can call at once;
* the pool, the rest, times ``work = claims / (claims + others)``. Claims: its partitions
  holding a record not yet committed at every sample for C seconds (its own fetch and
  commit positions: no I/O). Others: partitions it does not own that a reading of Kafka
  (high-water marks, the group's committed offsets; every g seconds) showed active in the
  last H seconds: a record not yet committed, or the committed offset moved. Nothing
  active anywhere: the pool is split by partitions.

At any instant the asks add up to at most Q. Partitions have one owner at a time: the
slices add up to the reserve. A claim in force was sampled at most E ago, every sample
finding a record not yet committed, which every reading begun after it shows (still
there, or the committed offset moved). An ask comes from a view whose last reading is at
most E old (it expires into one without claims), or else counts every partition of others
as busy. With C >= E + 2g and H >= E + 2g, each replica's others hold every partition
claimed by another, its claims + others are at least all the claims of the group, and
the works (exact fractions, floored) add up to at most 1.

In any window. A limit that shrinks applies at once; one that grows once no lower ask is
left in the last W'. A replica's calls in a VOD window [a, a + W] are then at most what it
asked at a (its last call there counted them all: W' > W), and the asks at a add up to at
most Q. Replicas reading at different moments disagree only about the last E seconds,
which C and H cover: when the hot partition moves, its new owner asks half the pool (the
old one stays in its others for H), then all of it, each a window later; the old owner
drops at once. Partitions that turn busy while their replica asks by partitions keep that
ask (never more) until they are claims, C < W' later, so an idle group starts a burst at
full speed: when it last asked so, no replica had a claim (it would have seen it: C > E),
and until then any other ask that grows waits a window, or grows at once only on a
reading begun after those partitions turned busy (C >= E + 2g), which shows them.

Two growths apply at once. Until a replica was allowed any call: a cold start overlaps
nothing; a replica joining a busy group first takes the reserve slices of its partitions
only, and can push one window over by those. And when its readings over the last W' show
no partition active but those it owned throughout: every call is made for a record not
yet committed, so no other replica called VOD in that window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction

from consumer.clock import SYSTEM_CLOCK, Clock

__all__ = ["Ask", "Partition", "QuotaWindow", "Share", "WorkView", "widened"]

WINDOW = 60.0
RESERVE = 10  # one call in 10 is never lent, so a partition that turns busy can call at once
RECHECK = 20  # a caller waiting for a token looks again at least 20 times a window

#: (topic, partition); aiokafka's ``TopicPartition`` is one.
Partition = tuple[str, int]


def widened(window: float) -> float:
    """The window a replica counts its calls over: VOD's, plus a margin for network jitter
    (a call is counted here when sent and by VOD when it arrives)."""
    return window * 1.05 + 0.1


@dataclass(frozen=True, slots=True)
class Share:
    """The reserve slices of ``partitions`` (indices of the main topic's ``total``) and
    ``work`` of the pool."""

    partitions: frozenset[int] = frozenset()
    total: int = 0
    work: Fraction = Fraction(0)

    def calls(self, quota: int) -> int:
        reserve = quota // RESERVE
        slices = sum(
            reserve * (i + 1) // self.total - reserve * i // self.total for i in self.partitions
        )
        return slices + math.floor((quota - reserve) * self.work)


@dataclass(frozen=True, slots=True)
class Ask:
    """What a replica asks of each quota: ``share`` now (at once if ``at_once``), falling
    to ``then`` at ``until`` unless asked again before."""

    share: Share
    until: float
    then: Share
    at_once: bool = False


class QuotaWindow:
    def __init__(
        self,
        per_minute: int,
        clock: Clock = SYSTEM_CLOCK,
        window: float = WINDOW,
    ) -> None:
        self.per_minute = per_minute  # calls per window; VOD's window is a minute
        self.window = widened(window)
        self._clock = clock
        self._calls: deque[float] = deque()
        #: (from, calls) asked, oldest first; the last may lie ahead (an ask's expiry).
        self._asked: list[tuple[float, int]] = []
        self._opened = False  # whether any call was ever allowed
        self._quiet_until = 0.0

    @property
    def limit(self) -> int:
        """Calls allowed in the current sliding window: the least asked over the last one."""
        now = self._clock.monotonic()
        self._forget(now)
        return min((calls for at, calls in self._asked if at <= now), default=0)

    @property
    def spent(self) -> int:
        """Calls counted in the current sliding window."""
        now = self._clock.monotonic()
        return sum(1 for sent in self._calls if sent + self.window > now)

    def ask(
        self, calls: int, *, at_once: bool = False, until: float | None = None, then: int = 0
    ) -> None:
        """Allow ``calls`` per window: at once if fewer than now, or ``at_once``, or no call
        was ever allowed; else once no fewer was asked for a full window. ``until``: fall to
        ``then`` at that moment unless asked again before."""
        now = self._clock.monotonic()
        if at_once or not self._opened:
            self._asked = [(now, calls)]
            self._opened = self._opened or calls > 0
        else:
            self._forget(now)
            self._asked = [asked for asked in self._asked if asked[0] <= now]
            self._asked.append((now, calls))
        if until is not None:
            self._asked.append((until, then))

    def _forget(self, now: float) -> None:
        # Keep the ask in force when the window began and every later one.
        asked = self._asked
        while len(asked) > 1 and asked[1][0] + self.window <= now:
            del asked[0]

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
            # A hair past the expiry: float time must not leave the call counted. Capped: a
            # limit that grows at once (``ask``) is seen by the callers waiting for a token.
            return min(self._calls[0] + self.window - now + 1e-3, self.window / RECHECK)
        return min(1.0, self.window / RECHECK)  # no share at all (yet): look again

    async def acquire(self) -> None:
        """Wait until one more call fits in the sliding minute, then count it."""
        while (wait := self.take()) > 0:
            await self._clock.sleep(wait)


class WorkView:
    """What one replica knows of the group's work: its own partitions' backlog (exact) and
    every partition's activity in its readings of Kafka, taken every ``period`` seconds."""

    def __init__(
        self, main: str, window: float, period: float, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.main = main
        self.period = period
        self.window = widened(window)
        #: A view, a sample streak or an ask older than this is not trusted (E).
        self.fresh = max(3 * period, min(1.0, window / 4))
        self.claim_after = self.stick = self.fresh + 2 * period  # C and H: < W'
        self._clock = clock
        self._committed: dict[Partition, int | None] = {}
        #: (began, partitions active) per reading, oldest first, reaching back a window.
        self._readings: deque[tuple[float, frozenset[Partition]]] = deque()
        self._busy_since: dict[int, float] = {}
        self._owned_since: dict[Partition, float] = {}
        self._sampled = -math.inf
        self._kept: Fraction | None = None  # what newly busy partitions keep (see ``ask``)

    def read(self, began: float, offsets: Mapping[Partition, tuple[int, int | None]]) -> None:
        """One reading that began at ``began``: (high-water mark, the group's committed
        offset or None) of every partition of every consumed topic. Active: a record not
        committed, the committed offset moved, or not seen before (its past is unknown)."""
        seen = self._committed
        active = frozenset(
            tp
            for tp, (high, committed) in offsets.items()
            if tp not in seen or seen[tp] != committed or high > (committed or 0)
        )
        self._committed = {tp: committed for tp, (_, committed) in offsets.items()}
        self._readings.append((began, active))
        keep = began - self.window - 2 * self.period
        while len(self._readings) > 1 and self._readings[1][0] <= keep:
            self._readings.popleft()

    def ask(self, owned: Collection[Partition], busy: Collection[Partition], total: int) -> Ask:
        """The ask of a replica owning ``owned`` (all topics), ``busy`` of them with a record
        not yet committed, ``total`` partitions in the main topic. Call it every period."""
        now = self._clock.monotonic()
        mine = frozenset(p for topic, p in owned if topic == self.main and p < total)
        if now - self._sampled > self.fresh:
            self._busy_since = {}  # a gap in the samples: no streak is known to have held
        self._sampled = now
        self._busy_since = {
            p: self._busy_since.get(p, now) for topic, p in busy if topic == self.main and p in mine
        }
        self._owned_since = {tp: self._owned_since.get(tp, now) for tp in owned}
        claims = sum(1 for since in self._busy_since.values() if since <= now - self.claim_after)
        pessimistic = Share(mine, total, _work(claims, total - len(mine), mine, total))
        began = self._readings[-1][0] if self._readings else -math.inf
        # A view is used while its ask can outlive the next period (then asked again).
        if began < now - self.fresh + self.period:  # too old: another's partitions may be claimed
            self._kept = None
            return Ask(pessimistic, now + self.fresh, _claimless(mine, total))
        others = len(
            {
                p
                for at, active in self._readings
                if at >= began - self.stick
                for topic, p in active
                if topic == self.main and p not in mine
            }
        )
        work = _work(claims, others, mine, total)
        pending = len(self._busy_since) - claims
        if not claims + others:
            self._kept = work  # by partitions
        elif pending and self._kept is not None:
            # Partitions turning busy while it asked by partitions keep what it had (never
            # more, never more than as claims) until they are claims: no dip, no window lost.
            self._kept = min(self._kept, Fraction(claims + pending, claims + pending + others))
            work = max(work, self._kept)
        else:
            self._kept = None
        until = began + self.fresh
        share = Share(mine, total, work)
        return Ask(share, until, _claimless(mine, total), at_once=self._alone(now, began))

    def _alone(self, now: float, began: float) -> bool:
        """Whether the readings show that no other replica called VOD in the last window."""
        since = now - self.window - self.period
        if began <= now - self.period or self._readings[0][0] > since:
            return False
        throughout = {tp for tp, at in self._owned_since.items() if at <= now - self.window}
        return all(active <= throughout for at, active in self._readings if at > since)


def _work(claims: int, others: int, mine: frozenset[int], total: int) -> Fraction:
    if claims + others:
        return Fraction(claims, claims + others)
    return Fraction(len(mine), total) if total else Fraction(0)  # nothing busy: by partitions


def _claimless(mine: frozenset[int], total: int) -> Share:
    """An ask with no claims and every other partition busy: safe with no view at all."""
    return Share(mine, total, _work(0, total - len(mine), mine, total))
