"""The VOD circuit: one systemic failure (authentication, clock, account, permission)
stops every VOD call until a single probe call passes.

VOD locks a key for 5 minutes after 5 failed signatures in a row; calling on with a
bad key makes an outage worse, and a wrong key must not dead-letter the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from structlog.typing import FilteringBoundLogger

from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.hold import Hold, Reason
from consumer.vod.errors import VodError, VodSystemicError, VodThrottled, VodTransientError

__all__ = ["Circuit", "CircuitOpen"]


class CircuitOpen(VodError):
    """Raised instead of calling VOD while the circuit is open."""

    systemic = True


class Circuit:
    """Open while the daemon's ``hold`` holds for ``Reason.CIRCUIT``: the hold is the state,
    so flow control, readiness and the records waiting on it all see the same thing."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        interval: float,
        log: FilteringBoundLogger,
        hold: Hold | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._probe = probe
        self._interval = interval
        self._log = log
        self.hold = hold if hold is not None else Hold()
        self._clock = clock
        self._prober: asyncio.Task[None] | None = None
        self.reason: str | None = None

    @property
    def is_open(self) -> bool:
        return Reason.CIRCUIT in self.hold

    async def wait_closed(self) -> None:
        await self.hold.until_clear(Reason.CIRCUIT)

    def open(self, error: VodSystemicError) -> None:
        if self.is_open:
            return
        self.reason = str(error)
        self._log.critical(
            "vod_circuit_open",
            error_code=error.error_code,
            reason=self.reason,
            action="VOD calls and consumption paused; check the VOD keys, account and clock",
        )
        self._prober = asyncio.create_task(self._probe_until_closed())
        self.hold.set(Reason.CIRCUIT, self.reason)

    def stop(self) -> None:
        """At shutdown: no more probes."""
        if self._prober is not None:
            self._prober.cancel()

    async def _probe_until_closed(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            try:
                await self._probe()
            except Exception as exc:
                # A systemic answer, or none of VOD's at all (a timeout, a refused
                # connection, a proxy's 5xx page): nothing says the key is accepted now.
                # Closing would let the held records try it, up to 4 at once, toward the
                # 5 failed signatures in a row that lock the key.
                if isinstance(exc, VodError) and _refused_or_unanswered(exc):
                    self._log.warning(
                        "vod_circuit_probe_failed", error_code=exc.error_code, status=exc.status
                    )
                    continue
                # Any other answer means VOD accepted the caller.
                self._log.info("vod_circuit_probe_passed", error=type(exc).__name__)
            self.reason = None
            self._log.warning("vod_circuit_closed", action="resuming")
            self.hold.clear(Reason.CIRCUIT)
            return


def _refused_or_unanswered(error: VodError) -> bool:
    """Whether the caller was refused (systemic), or VOD's gateway never judged the call:
    no answer, or a 5xx without a code (not VOD's). A throttled call, or a coded internal
    error, passed authentication."""
    if isinstance(error, VodSystemicError):
        return True
    transient = isinstance(error, VodTransientError) and not isinstance(error, VodThrottled)
    return transient and error.error_code is None
