"""The side server: liveness, readiness and metrics over HTTP, in the daemon's own loop.

- ``/livez`` passes while the consume loop makes progress (every fetch cycle beats,
  idle or not) and the event loop answers. It does not depend on the broker or on
  VOD: a broker blip must not restart every pod.
- ``/readyz`` passes once the consumer joined its group and nothing holds it (the
  dead-letter guard, later the VOD circuit); 503 from the moment SIGTERM arrives.
- ``/metrics`` is Prometheus text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

__all__ = ["Health", "serve"]


class Health:
    def __init__(
        self,
        heartbeat: Callable[[], float],
        liveness_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._heartbeat = heartbeat  # when the consume loop last made progress (clock time)
        self._timeout = liveness_timeout
        self._clock = clock
        self._holds: list[Callable[[], str | None]] = []
        self.joined = False
        self.stopping = False

    def hold_readiness_when(self, check: Callable[[], str | None]) -> None:
        """``check`` returns why the daemon is not ready, or None."""
        self._holds.append(check)

    def live(self) -> tuple[bool, str]:
        if not self.joined:
            return True, "starting"  # joining waits on the broker: not a reason to restart
        idle = self._clock() - self._heartbeat()
        if idle > self._timeout:
            return False, f"consume loop stalled for {idle:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "shutting down"
        if not self.joined:
            return False, "not yet in the consumer group"
        for check in self._holds:
            if (why := check()) is not None:
                return False, why
        return True, "ok"


async def serve(health: Health, host: str, port: int) -> Callable[[], Awaitable[None]]:
    """Start the side server; return the coroutine function that stops it."""
    app = web.Application()
    app.router.add_get("/livez", _probe(health.live))
    app.router.add_get("/readyz", _probe(health.ready))
    app.router.add_get("/metrics", make_aiohttp_handler())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner.cleanup


def _probe(
    check: Callable[[], tuple[bool, str]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_: web.Request) -> web.Response:
        ok, why = check()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    return handle
