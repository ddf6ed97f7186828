"""The demo's pictures of what the daemon did: where the records went, topic by topic, and
one sample outcome line of each kind."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from consumer.redelivery.topology import Topology

__all__ = ["print_flow", "print_samples"]

_FINAL = ("done", "skipped", "dead_lettered")
# The fields a reader looks at first; the rest of a line follows them.
_FIRST = ("outcome", "asset_id", "event_type", "handler", "reason", "cover", "retry_topic")


def print_flow(outcomes: list[dict[str, Any]], topology: Topology, letters: int) -> None:
    """Main topic -> each retry tier -> the dead-letter topic, with the records each held
    and what became of them there."""
    by_topic: dict[str, Counter[str]] = {}
    for line in outcomes:
        by_topic.setdefault(str(line.get("topic")), Counter())[str(line.get("outcome"))] += 1
    print("\nwhere the records went:")
    topics = [topology.main, *(tier.topic for tier in topology.tiers)]
    for depth, topic in enumerate(topics):
        seen = by_topic.get(topic, Counter())
        ends = ", ".join(f"{kind.replace('_', ' ')} {seen[kind]}" for kind in _FINAL if seen[kind])
        indent = "  " + "   " * depth
        print(f"{indent}{topic}: {sum(seen.values())} records -> {ends or 'nothing final'}")
        if seen["retried"]:
            print(f"{indent}   |  {seen['retried']} to a retry tier")
            print(f"{indent}   v")
    print(f"  {topology.dead_letter}: {letters} dead letters, each with its reason")


def print_samples(outcomes: list[dict[str, Any]]) -> None:
    """One outcome line of each kind, as the daemon wrote it (the first of each)."""
    print("\none outcome line of each kind, as written:")
    shown: set[str] = set()
    for line in outcomes:
        kind = str(line.get("outcome"))
        if kind in shown:
            continue
        shown.add(kind)
        ordered = {k: line[k] for k in _FIRST if k in line} | line
        text = json.dumps(ordered, ensure_ascii=False)
        print(f"  {text[:400]}{' ...' if len(text) > 400 else ''}")
