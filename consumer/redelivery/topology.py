"""The topics the daemon reads and writes, named from the main topic unless configured."""

from __future__ import annotations

from dataclasses import dataclass

from consumer.config import Settings
from consumer.config.sections import dead_letter_topic, tier_topic

__all__ = ["Tier", "Topology"]


@dataclass(frozen=True, slots=True)
class Tier:
    index: int
    delay: float
    topic: str


@dataclass(frozen=True, slots=True)
class Topology:
    main: str
    tiers: tuple[Tier, ...]
    dead_letter: str
    #: Compacted log of dead letters already replayed (``dlq replay`` is idempotent).
    replays: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        main = settings.kafka.topic
        dead_letter = dead_letter_topic(main, settings.dead_letter)
        return cls(
            main=main,
            tiers=tuple(
                Tier(i, spec.delay, tier_topic(main, spec))
                for i, spec in enumerate(settings.retry.tiers)
            ),
            dead_letter=dead_letter,
            replays=f"{dead_letter}.replays",
        )

    @property
    def consumed(self) -> list[str]:
        """The main topic and every tier: all read by the same group."""
        return [self.main, *(tier.topic for tier in self.tiers)]

    def tier_topics(self) -> frozenset[str]:
        return frozenset(tier.topic for tier in self.tiers)
