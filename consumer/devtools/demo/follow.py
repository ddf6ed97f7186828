"""The daemon's and the ingest's lines as they come, tallied for the demo's progress, its
summary and its checks (the ingest's own are here)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from consumer.devtools.demo.announce import Pushed
from consumer.devtools.harness import JsonLines
from consumer.devtools.simulator.notify import TaskAnnouncer

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
        self.side_port: int | None = None  # where the daemon serves /metrics

    def poll(self) -> None:
        for line in self._log.poll():
            name = str(line.get("event"))
            self.events[name] += 1
            if name == "record_processed":
                self.outcomes.append(line)
                self.finals += line.get("outcome") in FINAL
            elif name == "side_server_listening":
                self.side_port = int(line["port"])
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

    def print_summary(self, pushed: Pushed, announcer: TaskAnnouncer) -> None:
        ingest = self
        announced: Counter[str] = Counter()
        for (kind, _, _), n in announcer.sent.items():
            announced[kind] += n
        told = ", ".join(f"{kind} {n}" for kind, n in sorted(announced.items()))
        print(
            f"\nnotifications: {pushed.smn + pushed.mfs} seeded + {sum(announced.values())} "
            f"announced by the simulator as its snapshot tasks ended ({told or 'none'}), "
            f"{pushed.count('forged')} forged, {pushed.count('redelivered')} SMN redeliveries, "
            f"2 subscription confirmations"
        )
        received = sum(ingest.received.values())
        print(
            f"ingest: received {received} (SMN {ingest.received['smn']}, MFS "
            f"{ingest.received['mfs']}, retries included); forwarded {ingest.forwarded}; "
            f"duplicates suppressed {ingest.duplicates}; subscriptions confirmed "
            f"{ingest.confirmed}; rejected {sum(ingest.rejected.values())}"
            + (
                " (" + ", ".join(f"{r} {n}" for r, n in ingest.rejected.most_common()) + ")"
                if ingest.rejected
                else ""
            )
        )

    def checks(
        self, pushed: Pushed, on_topic: Counter[str | None], code: int
    ) -> list[tuple[bool, str]]:
        """The demo's checks of the ingest: answers, exactly-once on the topic, forgeries."""
        ingest = self
        once = [m for m in ingest.forwarded_ids if on_topic[m] != 1]
        forged = [m for m in pushed.forged_ids if on_topic[m]]
        twice = [m for m, n in ingest.forwarded_ids.items() if n > 1]
        unexpected = pushed.unexpected()
        return [
            (
                not unexpected,
                "every notification was answered as planned: genuine ones 200, forged ones "
                f"and the confirmation elsewhere 403 ({'; '.join(unexpected) or 'so it was'})",
            ),
            (
                not once and not twice,
                f"every notification the ingest forwarded is on the topic exactly once "
                f"({ingest.forwarded} forwarded; {len(once) + len(twice)} not once)",
            ),
            (
                not forged,
                f"no forged notification reached the topic ({len(forged)} of "
                f"{len(pushed.forged_ids)} did)",
            ),
            (
                ingest.confirmed == 1,
                f"the subscription was confirmed once, on the allowed host only "
                f"({ingest.confirmed} confirmed)",
            ),
            (
                code == 0,
                f"the ingest exited {code} on SIGTERM (0 expected)",
            ),
        ]


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
