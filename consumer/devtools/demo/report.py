"""What the demo prints at the end: what the ingest took and refused, where every record
went, and its checks of its own claims (each printed ok or FAIL; the demo exits 1 when
one fails)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from consumer.devtools.demo.announce import Pushed, cover_origin
from consumer.devtools.demo.cost import duplicate_head_frames, print_cost
from consumer.devtools.demo.follow import IngestLog, Progress
from consumer.devtools.demo.picture import print_flow, print_samples
from consumer.devtools.demo.seed import Plan
from consumer.devtools.simulator.notify import TaskAnnouncer
from consumer.errors import RecordError
from consumer.events import decode
from consumer.redelivery import headers as h
from consumer.redelivery.topology import Topology
from consumer.testing.vodsim import Quotas, SimState

__all__ = ["Report"]

MAX_THROTTLED = 5  # "a handful": the daemon paces itself to the quota
_OUTCOMES = ("done", "skipped", "retried", "dead_lettered")
_HANDLERS = ("log", "regenerate_head_frame", "fallback_cover", "fallback_on_thumbnails")


def _short(reason: str) -> str:
    # JSON parser messages differ by byte position: group them by kind.
    return reason.split(" (")[0] if "not valid JSON" in reason else reason


def _letter_asset(record: Any) -> str | None:
    try:
        return decode(record.value).asset_id
    except RecordError:
        return None


class Report:
    def __init__(
        self,
        plan: Plan,
        state: SimState,
        announcer: TaskAnnouncer,
        log: Progress,
        letters: list[Any],
        topology: Topology,
        quotas: Quotas,
        code: int,
        settled: bool,
    ) -> None:
        self.plan, self.state, self.announcer, self.log = plan, state, announcer, log
        self.letters, self.topology, self.code, self.settled = letters, topology, code, settled
        self.quotas = quotas
        self.reasons = {id(r): h.header(r.headers, h.REASON) or "" for r in letters}
        self.letter_assets: dict[str, list[str]] = {}
        for record in letters:
            asset = _letter_asset(record)
            if asset is not None:
                self.letter_assets.setdefault(asset, []).append(self.reasons[id(record)])

    def with_ingest(
        self,
        ingest: IngestLog,
        pushed: Pushed,
        records: list[Any],
        code: int,
        leaked: bool,
    ) -> None:
        """What the ingest did, what was pushed to it, the main topic's records in the end."""
        self.ingest, self.pushed, self.ingest_code, self.leaked = ingest, pushed, code, leaked
        self.records = records
        self.on_topic = Counter(h.header(r.headers, "ingest-message-id") for r in records)
        self.expected = ingest.forwarded + len(self.plan.direct)

    def ending(self, asset: str) -> str:
        sim = self.state.assets[asset]
        if sim.cover_url is not None:
            return cover_origin(sim.cover_source)
        if any(self.letter_assets.get(asset, ())):
            return "no cover: dead-lettered, with the reason"
        return "no cover and no dead letter"

    def print_summary(self, processing: float, elapsed: float) -> None:
        plan, state, log = self.plan, self.state, self.log
        print("\n=== what happened ===")
        self.ingest.print_summary(self.pushed, self.announcer)
        print(
            f"\nrecords on the topic: {self.ingest.forwarded} forwarded by the ingest + "
            f"{len(plan.direct)} written straight to it; {log.finals} of {self.expected} have "
            f"their final outcome; {log.count('retried')} trips to a retry tier on the way"
        )

        print("\noutcome lines per handler ('retried': to a retry tier, it comes back):")
        table = Counter((line.get("handler") or "-", line.get("outcome")) for line in log.outcomes)
        handlers = [*_HANDLERS, *sorted({hd for hd, _ in table} - {*_HANDLERS, "-"}), "-"]
        print(f"  {'handler':<24}" + "".join(f"{o:>15}" for o in _OUTCOMES))
        for handler in handlers:
            if any(table[handler, o] for o in _OUTCOMES):
                row = "".join(f"{table[handler, o]:>15}" for o in _OUTCOMES)
                print(f"  {handler:<24}{row}")
        print("  ('-': no handler ran: malformed, or no route)")
        print_flow(log.outcomes, self.topology, len(self.letters))
        print_samples(log.outcomes)

        endings = Counter(self.ending(asset) for asset in plan.failed)
        kinds = Counter((plan.failed[a], self.ending(a)) for a in plan.failed)
        print(
            f"\ncovers on the {len(plan.failed)} FAILED assets that had none "
            "(regeneration first, the fallback after it):"
        )
        for ending, count in endings.most_common():
            split = ", ".join(
                f"{kinds[k, ending]} {k}"
                for k in ("with snapshots", "without snapshots")
                if kinds[k, ending]
            )
            print(f"  {count:>5}  {ending}  ({split})")
        verified = [line for line in log.outcomes if line.get("cover") == "verified"]
        noted = Counter(line.get("cover_source") for line in verified)
        print(
            f"  outcome lines reporting a verified cover: regenerated {noted['regenerated']}, "
            f"fallback {noted['fallback']} (a cover set by a requested snapshot task is "
            "seen as 'cover present' on the next check)"
        )
        print_cost(self.plan, self.state, self.log.outcomes, verified)

        touched = self._touched_covered()
        looked = {
            line.get("asset_id")
            for line in log.outcomes
            if line.get("reason") == "cover present" and line.get("asset_id") in plan.covered
        }
        print(
            f"\ncovers left alone: {len(plan.covered) - len(touched)} of {len(plan.covered)} "
            f"assets that had a cover still have it, unchanged; {len(looked)} of them went "
            f"through a cover handler and were skipped as 'cover present' (of the "
            f"{len(plan.failed_covered)} FAILED ones: "
            f"{len(looked & plan.failed_covered)}); written: {len(touched)}"
        )

        reasons = Counter(_short(self.reasons[id(r)]) for r in self.letters)
        print(f"\ndead letters: {len(self.letters)} in {self.topology.dead_letter}, by reason:")
        for reason, count in reasons.most_common():
            print(f"  {count:>5}  {reason}")
        covered_since = [
            asset
            for asset in self.letter_assets
            if asset in plan.failed and state.assets[asset].cover_url is not None
        ]
        if covered_since:
            print(
                f"  ({len(covered_since)} about a FAILED asset that has a cover by now: a "
                "snapshot task requested by the last attempt, or a duplicate event, set it)"
            )

        print("\nVOD API calls (as the simulator counted them):")
        for (operation, result), count in sorted(state.calls.items()):
            print(f"  {operation:<22}{result:<12}{count:>6}")
        window = self.quotas.window
        writes, queries = state.most_in_window("write"), state.most_in_window("query")
        print(
            f"quota use, most requests VOD received in any {window:g} s window: writes {writes} of "
            f"{self.quotas.writes_per_minute}, queries {queries} of "
            f"{self.quotas.queries_per_minute}; throttled answers: {state.throttled}"
        )
        print(
            f"\nelapsed: {elapsed:.1f} s in all, {processing:.1f} s from starting the daemon "
            f"to the last outcome; daemon exit code {self.code}"
        )

    def _touched_covered(self) -> list[str]:
        return [
            asset
            for asset, url in self.plan.covered.items()
            if self.state.assets[asset].cover_url != url
            or self.state.assets[asset].cover_source is not None
        ]

    def checks(self) -> int:
        """Print every check; return how many failed."""
        plan, state = self.plan, self.state
        values = Counter(r.value for r in self.letters)
        reasoned = {r.value for r in self.letters if self.reasons[id(r)]}
        missing = [v for v in plan.malformed if v not in reasoned]
        bare = [a for a in plan.failed if self.ending(a) == "no cover and no dead letter"]
        touched = self._touched_covered()
        expected_letters = set(plan.failed) | plan.failed_covered
        stray = [
            self.reasons[id(r)]
            for r in self.letters
            if r.value not in plan.malformed and _letter_asset(r) not in expected_letters
        ]
        writes, queries = state.most_in_window("write"), state.most_in_window("query")
        checks: list[tuple[bool, str]] = [
            (
                self.settled and self.log.finals == self.expected,
                f"every record has exactly one final outcome ({self.log.finals} lines for "
                f"{self.expected} records)",
            ),
            (
                not bare,
                f"every FAILED asset ends with a cover or a dead letter saying why "
                f"({len(bare)} without either{': ' + ', '.join(bare[:3]) if bare else ''})",
            ),
            (
                not touched,
                f"no asset that had a cover was written ({len(touched)} were)",
            ),
            (
                state.throttled <= MAX_THROTTLED
                and writes <= self.quotas.writes_per_minute
                and queries <= self.quotas.queries_per_minute,
                f"VOD quotas respected: {state.throttled} throttled (at most {MAX_THROTTLED}), "
                f"most writes in a window {writes} <= {self.quotas.writes_per_minute}",
            ),
            (
                not missing,
                f"every malformed record is in the dead-letter topic with a reason "
                f"({len(plan.malformed) - len(missing)} of {len(plan.malformed)}; "
                f"{sum(values[v] > 1 for v in plan.malformed)} twice)",
            ),
            (
                not stray,
                f"nothing else was dead-lettered ({len(stray)} other"
                f"{': ' + '; '.join(stray[:3]) if stray else ''})",
            ),
            (
                duplicate_head_frames(self.plan, self.state) == 0,
                f"no regeneration paid for twice, lost answers included "
                f"({duplicate_head_frames(self.plan, self.state)} duplicate head-frame tasks)",
            ),
            (
                not self.leaked,
                "the VOD secret key and the MFS key appear nowhere in the daemon's or the "
                "ingest's output",
            ),
            (self.code == 0, f"the daemon exited {self.code} on SIGTERM (0 expected)"),
            *self.ingest.checks(self.pushed, self.on_topic, self.ingest_code),
        ]
        print("\nchecks:")
        for ok, text in checks:
            print(f"  {'ok  ' if ok else 'FAIL'}  {text}")
        return sum(1 for ok, _ in checks if not ok)
