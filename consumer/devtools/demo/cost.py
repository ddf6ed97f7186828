"""What remediation cost, per asset that got a cover, and whether a regeneration was ever
paid for twice: from the outcome lines (each final one carries its record's VOD calls so
far) and the simulator's record of the tasks it ran."""

from __future__ import annotations

from collections import Counter
from typing import Any

from consumer.devtools.demo.follow import FINAL
from consumer.devtools.demo.seed import Plan
from consumer.testing.vodsim import SimState

__all__ = ["duplicate_head_frames", "print_cost"]


def print_cost(
    plan: Plan, state: SimState, outcomes: list[dict[str, Any]], verified: list[dict[str, Any]]
) -> None:
    remediated = [a for a in plan.failed if state.assets[a].cover_url is not None]
    if not remediated:
        return
    finals: dict[str, dict[str, int]] = {}
    for line in outcomes:
        asset = line.get("asset_id")
        if asset in plan.failed and line.get("outcome") in FINAL:
            cost = finals.setdefault(asset, {"q": 0, "w": 0, "t": 0})
            cost["q"] += line.get("vod_queries", 0)
            cost["w"] += line.get("vod_writes", 0)
            cost["t"] += line.get("vod_billed_tasks", 0)
    costs = [finals.get(asset, {"q": 0, "w": 0, "t": 0}) for asset in remediated]
    print(
        f"  per remediated asset ({len(remediated)}): VOD queries "
        f"{sum(c['q'] for c in costs) / len(costs):.1f}, writes "
        f"{sum(c['w'] for c in costs) / len(costs):.1f}, billed snapshot tasks "
        f"{sum(c['t'] for c in costs) / len(costs):.2f} (at most 1 per regeneration; "
        f"{duplicate_head_frames(plan, state)} duplicate head-frame tasks, "
        f"{state.count('create_process_task', 'lost')} task answers lost on the way)"
    )
    times = sorted(float(line["verified_after_s"]) for line in verified)
    if times:
        p50, p99 = times[len(times) // 2], times[min(len(times) - 1, len(times) * 99 // 100)]
        print(f"  time from the event to a verified cover: p50 {p50:.1f} s, p99 {p99:.1f} s")


def duplicate_head_frames(plan: Plan, state: SimState) -> int:
    """Head-frame tasks beyond one per asset: a regeneration paid for twice."""
    head_frames = Counter(
        asset
        for asset in plan.failed
        for task in state.assets[asset].tasks
        if task["thumbnail_para"].get("dots") == [0]
    )
    return sum(count - 1 for count in head_frames.values() if count > 1)
