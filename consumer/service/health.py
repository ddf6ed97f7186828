"""The side server: liveness, readiness and metrics over HTTP, in the daemon's own loop.

- ``/livez`` passes while the consume loop makes progress (every fetch cycle beats,
  idle or not) and the event loop answers. It does not depend on the broker or on
  VOD: a broker blip must not restart every pod.
- ``/readyz`` passes once the consumer joined its group, nothing holds it (the
  dead-letter guard, the VOD circuit, a stuck record) and the broker answers: a replica
  cut off from its broker (no answer, or offset commits failing, for a few seconds) is
  not ready. 503 from the moment SIGTERM arrives, naming the reason.
- ``/metrics`` is Prometheus text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.hold import Hold

__all__ = ["BrokerContact", "Health", "serve"]

# A broker that has not answered for this long, or commits failing this long: not ready.
CONTACT_GRACE = 6.0


class BrokerContact:
    """Whether the broker answers: the daemon probes it every few seconds, the engine
    reports its commits; both are remembered here, read by ``/readyz``."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, grace: float = CONTACT_GRACE) -> None:
        self._clock = clock
        self._grace = grace
        self._silent_since: float | None = None
        self._error = ""

    def answered(self) -> None:
        self._silent_since = None

    def unanswered(self, error: str) -> None:
        if self._silent_since is None:
            self._silent_since = self._clock.monotonic()
        self._error = error

    def trouble(self) -> str | None:
        if self._silent_since is None:
            return None
        silent = self._clock.monotonic() - self._silent_since
        if silent < self._grace:
            return None
        return f"broker unreachable for {silent:.0f}s ({self._error})"


class Health:
    def __init__(
        self,
        heartbeat: Callable[[], float],
        liveness_timeout: float,
        hold: Hold | None = None,
        clock: Clock = SYSTEM_CLOCK,
        commits_failing_since: Callable[[], float | None] = lambda: None,
        contact: BrokerContact | None = None,
    ) -> None:
        self._heartbeat = heartbeat  # when the consume loop last made progress (monotonic)
        self._timeout = liveness_timeout
        self._clock = clock
        self.hold = hold if hold is not None else Hold()
        self._commits_failing_since = commits_failing_since
        self.contact = contact if contact is not None else BrokerContact(clock)
        self.joined = False

    def live(self) -> tuple[bool, str]:
        if not self.joined:
            return True, "starting"  # joining waits on the broker: not a reason to restart
        idle = self._clock.monotonic() - self._heartbeat()
        if idle > self._timeout:
            return False, f"consume loop stalled for {idle:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if (why := self.hold.why()) is not None:
            return False, why
        if not self.joined:
            return False, "not yet in the consumer group"
        if (why := self.contact.trouble()) is not None:
            return False, why
        since = self._commits_failing_since()
        if since is not None and self._clock.monotonic() - since >= CONTACT_GRACE:
            return False, f"offset commits failing for {self._clock.monotonic() - since:.0f}s"
        return True, "ok"


async def serve(health: Health, host: str, port: int) -> tuple[Callable[[], Awaitable[None]], int]:
    """Start the side server; return the coroutine function that stops it, and the port
    it listens on (the one asked for, or the one the kernel chose for port 0)."""
    app = web.Application()
    app.router.add_get("/livez", _probe(health.live))
    app.router.add_get("/readyz", _probe(health.ready))
    app.router.add_get("/metrics", make_aiohttp_handler())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound: int = runner.addresses[0][1] if runner.addresses else port
    return runner.cleanup, bound


def _probe(
    check: Callable[[], tuple[bool, str]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_: web.Request) -> web.Response:
        ok, why = check()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    return handle
