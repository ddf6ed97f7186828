"""The VOD circuit: one systemic failure (authentication, clock, account, permission)
stops every VOD call until a single probe call passes.

VOD locks a key for 5 minutes after 5 failed signatures in a row; calling on with a
bad key makes an outage worse, and a wrong key must not dead-letter the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from structlog.typing import FilteringBoundLogger

from consumer.vod.errors import VodError, VodSystemicError

__all__ = ["Circuit", "CircuitOpen"]


class CircuitOpen(VodError):
    """Raised instead of calling VOD while the circuit is open."""

    systemic = True


class Circuit:
    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        interval: float,
        log: FilteringBoundLogger,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._probe = probe
        self._interval = interval
        self._log = log
        self._on_change = on_change
        self._closed = asyncio.Event()
        self._closed.set()
        self._prober: asyncio.Task[None] | None = None
        self.reason: str | None = None

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def open(self, error: VodSystemicError) -> None:
        if self.is_open:
            return
        self.reason = str(error)
        self._closed.clear()
        self._log.critical(
            "vod_circuit_open",
            error_code=error.error_code,
            reason=self.reason,
            action="VOD calls and consumption paused; check the VOD keys, account and clock",
        )
        self._prober = asyncio.create_task(self._probe_until_closed())
        self._on_change()

    def stop(self) -> None:
        """At shutdown: no more probes."""
        if self._prober is not None:
            self._prober.cancel()

    async def _probe_until_closed(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._probe()
            except VodSystemicError as exc:
                self._log.warning("vod_circuit_probe_failed", error_code=exc.error_code)
                continue
            except Exception as exc:  # any other answer means VOD accepted the call itself
                self._log.info("vod_circuit_probe_passed", error=type(exc).__name__)
            self.reason = None
            self._closed.set()
            self._log.warning("vod_circuit_closed", action="resuming")
            self._on_change()
            return
