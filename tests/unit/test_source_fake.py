"""The ``Source`` contract against the in-memory ``FakeSource`` the engine's unit tests use."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiokafka import TopicPartition

from tests.contract.source import SourceContract
from tests.fakes import FakeSource

TOPIC = "vod-cover-events"


class FakeRig:
    def __init__(self) -> None:
        self.partitions = (TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1))
        self.source = FakeSource(self.partitions)

    async def append(self, tp: TopicPartition, values: Sequence[bytes]) -> None:
        for value in values:
            self.source.append(tp, value)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.source.committed.get(tp)


class TestFakeSource(SourceContract):
    @pytest.fixture
    def rig(self) -> FakeRig:
        return FakeRig()
