"""The topics the daemon reads and writes, named from the main topic unless configured."""

from __future__ import annotations

from dataclasses import dataclass

from consumer.config import Settings

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
        dead_letter = settings.dead_letter.topic or f"{main}.dlq"
        return cls(
            main=main,
            tiers=tuple(
                Tier(i, spec.delay, spec.topic or f"{main}.retry.{_label(spec.delay)}")
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


def _label(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
