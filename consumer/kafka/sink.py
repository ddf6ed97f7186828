"""Where retried and dead-lettered records go: the ``Sink`` contract and its Kafka producer.

A write returns only once the broker acknowledged it (``acks=all``): the source
record is committed after that, so a crash in between yields a duplicate at
worst. While the broker is down a write waits and tries again; the record
holds its slot in flight, so memory stays bounded and nothing commits past it.
A record too large for the producer or the broker is refused at once
(:class:`RecordTooLarge`): no retry can make it fit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from structlog.typing import FilteringBoundLogger

from consumer.errors import ConsumerError

__all__ = ["DEFAULT_MAX_REQUEST_SIZE", "KafkaSink", "RecordTooLarge", "Sink"]

DEFAULT_MAX_REQUEST_SIZE = 1_048_576  # aiokafka's producer default


class RecordTooLarge(ConsumerError):
    """The record can never be written as it is: larger than the producer or broker allows."""


class Sink(Protocol):
    @property
    def max_request_size(self) -> int:
        """The largest record (key, value, headers) the sink may be asked to write."""
        ...

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> None:
        """Return once the record is durably written; never give up on a failure that may
        pass (cancel to stop); raise :class:`RecordTooLarge` for one that cannot."""
        ...


class KafkaSink:
    def __init__(
        self, options: dict[str, Any], log: FilteringBoundLogger, max_delay: float = 5.0
    ) -> None:
        self._producer = AIOKafkaProducer(**options, acks="all")
        self.max_request_size: int = options.get("max_request_size", DEFAULT_MAX_REQUEST_SIZE)
        self._log = log
        self._max_delay = max_delay
        self._started = False

    async def start(self) -> None:
        """Connect; may be called again after it failed (and after it succeeded)."""
        if not self._started:
            await self._producer.start()
            self._started = True

    async def close(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._producer.stop(), timeout)
        except TimeoutError:
            self._log.warning("producer_close_timeout", seconds=timeout)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> None:
        delay = 0.1
        while True:
            try:
                await self._producer.send_and_wait(topic, value, key=key, headers=list(headers))
            except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
                raise RecordTooLarge(f"{topic}: {exc}") from None
            except KafkaError as exc:
                self._log.warning(
                    "side_write_failed",
                    topic=topic,
                    error=type(exc).__name__,
                    reason=str(exc),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
            else:
                return
