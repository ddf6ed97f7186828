"""The daemon's and the ingest's lines as they come, tallied for the demo's progress, its
summary and its checks."""

from __future__ import annotations

from collections import Counter
from typing import Any

from consumer.devtools.harness import JsonLines

__all__ = ["FINAL", "IngestLog", "Progress"]

FINAL = frozenset({"done", "skipped", "dead_lettered"})


class Progress:
    """The daemon's lines as they come: outcome lines, final ones counted, the rest tallied."""

    def __init__(self, log: JsonLines) -> None:
        self._log = log
        self.outcomes: list[dict[str, Any]] = []
        self.events: Counter[str] = Counter()
        self.notable: list[dict[str, Any]] = []  # warnings and worse
        self.finals = 0

    def poll(self) -> None:
        for line in self._log.poll():
            name = str(line.get("event"))
            self.events[name] += 1
            if name == "record_processed":
                self.outcomes.append(line)
                self.finals += line.get("outcome") in FINAL
            elif line.get("level") in ("warning", "error", "critical"):
                self.notable.append(line)

    def count(self, outcome: str) -> int:
        return sum(1 for line in self.outcomes if line.get("outcome") == outcome)


class IngestLog:
    """The ingest's lines as they come: what it forwarded (by message id), suppressed as a
    duplicate, refused (by reason), and the subscriptions it confirmed."""

    def __init__(self, log: JsonLines) -> None:
        self._log = log
        self.forwarded_ids: Counter[str] = Counter()
        self.received: Counter[str] = Counter()  # by transport
        self.rejected: Counter[str] = Counter()  # by reason
        self.duplicates = 0
        self.confirmed = 0
        self.notable: list[dict[str, Any]] = []

    @property
    def forwarded(self) -> int:
        return sum(self.forwarded_ids.values())

    def poll(self) -> None:
        for line in self._log.poll():
            name = line.get("event")
            transport = str(line.get("transport"))
            if name == "notification_forwarded":
                self.forwarded_ids[str(line.get("message_id"))] += 1
            elif name == "duplicate_suppressed":
                self.duplicates += 1
            elif name == "notification_rejected":
                self.rejected[str(line.get("reason"))] += 1
                if int(line.get("status", 0)) >= 500:
                    self.notable.append(line)
            elif name == "smn_subscription_confirmed":
                self.confirmed += 1
            elif line.get("level") in ("warning", "error", "critical"):
                self.notable.append(line)
            if name in _INGEST_ANSWERS:
                self.received[transport] += 1


_INGEST_ANSWERS = frozenset(
    {
        "notification_forwarded",
        "duplicate_suppressed",
        "notification_rejected",
        "smn_subscription_confirmed",
        "smn_message_acknowledged",
        "smn_unsubscribed",
    }
)
