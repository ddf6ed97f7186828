"""VOD as the handlers see it: the client behind the circuit, the quotas and a cap on
calls in flight, with metrics.

A call takes its quota token with a connection slot in hand, right before it is sent,
so the count is of calls on the wire. Until one call has succeeded the key is unproven,
so calls go one at a time: a wrong key then fails once, not once per waiting handler.
After that up to ``max_concurrent_calls`` (at most 4) run at once, so even a key
revoked mid-flight cannot fail 5 times in a row before the circuit stops the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from consumer import metrics
from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.tracing import Tracer
from consumer.vod.api import VodApi
from consumer.vod.circuit import Circuit, CircuitOpen
from consumer.vod.client import Category, VodCall
from consumer.vod.errors import VodError, VodSystemicError, VodThrottled
from consumer.vod.models import (
    AssetDetail,
    ProcessTaskRequest,
    ProcessTaskResponse,
    ThumbnailTasks,
)
from consumer.vod.quota import Ask, QuotaWindow

__all__ = ["GuardedVod"]

T = TypeVar("T")


class GuardedVod:
    def __init__(
        self,
        client: VodApi,
        circuit: Circuit,
        writes: QuotaWindow,
        queries: QuotaWindow,
        max_concurrent: int,
        clock: Clock = SYSTEM_CLOCK,
        tracer: Tracer | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._tracer = tracer if tracer is not None else Tracer(enabled=False)
        self.circuit = circuit
        self.writes = writes
        self.queries = queries
        self._slots = asyncio.Semaphore(1)
        self._unproven = max_concurrent - 1  # slots to add once a call succeeds

    def set_share(self, ask: Ask) -> None:
        """This replica's share of the tenant's quotas (``WorkView.ask``)."""
        for group, window in (("write", self.writes), ("query", self.queries)):
            quota = window.per_minute
            window.ask(
                ask.share.calls(quota),
                at_once=ask.at_once,
                until=ask.until,
                then=ask.then.calls(quota),
            )
            metrics.VOD_QUOTA_SHARE.labels(group).set(window.limit)

    async def show_asset_detail(
        self,
        asset_id: str,
        categories: Sequence[Category] = ("base_info", "thumbnail_info"),
        *,
        calls: list[VodCall] | None = None,
    ) -> AssetDetail:
        return await self._guarded(
            "show_asset_detail",
            self.queries,
            lambda: self._client.show_asset_detail(asset_id, categories, calls=calls),
        )

    async def update_cover(self, thumbnail_url: str, *, calls: list[VodCall] | None = None) -> None:
        await self._guarded(
            "update_cover",
            self.writes,
            lambda: self._client.update_cover(thumbnail_url, calls=calls),
        )

    async def create_process_task(
        self, request: ProcessTaskRequest, *, calls: list[VodCall] | None = None
    ) -> ProcessTaskResponse:
        return await self._guarded(
            "create_process_task",
            self.writes,
            lambda: self._client.create_process_task(request, calls=calls),
        )

    async def list_thumbnail_tasks(
        self, asset_id: str, *, calls: list[VodCall] | None = None
    ) -> ThumbnailTasks:
        return await self._guarded(
            "list_thumbnail_tasks",
            self.queries,
            lambda: self._client.list_thumbnail_tasks(asset_id, calls=calls),
        )

    async def _guarded(
        self, operation: str, window: QuotaWindow, call: Callable[[], Awaitable[T]]
    ) -> T:
        while True:
            async with self._slots:
                if self.circuit.is_open:
                    raise CircuitOpen(None, self.circuit.reason, None)
                # The token is taken with the connection in hand, right before sending;
                # without one, the slot goes back to the others while this call waits.
                if (wait := window.take()) == 0.0:
                    return await self._send(operation, window, call)
            await self._clock.sleep(wait)

    async def _send(
        self, operation: str, window: QuotaWindow, call: Callable[[], Awaitable[T]]
    ) -> T:
        began = self._clock.monotonic()
        result = "ok"
        try:
            with self._tracer.vod_call(operation):
                answer = await call()
        except VodError as exc:
            result = exc.error_code or type(exc).__name__
            if isinstance(exc, VodSystemicError):
                self.circuit.open(exc)
            elif isinstance(exc, VodThrottled):
                metrics.VOD_THROTTLED.inc()
                window.quiet(exc.retry_after)
            raise
        finally:
            metrics.VOD_REQUESTS.labels(operation, result).inc()
            metrics.VOD_SECONDS.labels(operation).observe(self._clock.monotonic() - began)
        if self._unproven:
            for _ in range(self._unproven):
                self._slots.release()
            self._unproven = 0
        return answer
