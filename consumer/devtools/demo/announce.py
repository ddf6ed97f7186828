"""The simulator's side of the demo: VOD's notifications pushed to the ingest (the seeded
ones, and what a hostile world adds: forgeries, redeliveries, subscription confirmations),
what came back, and how each asset got its cover."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field

from consumer.devtools.demo.seed import FORGED_MFS, FORGED_SMN, REDELIVERED_SMN, Plan
from consumer.devtools.simulator.app import SUBSCRIBE_PATH
from consumer.devtools.simulator.notify import Pusher, mfs_callback

__all__ = ["Pushed", "cover_origin", "push_seed"]

SENDERS = 20  # notifications in flight at once, as several VOD workers would send them
FORGED_KEY = b"a key VOD never had"


@dataclass
class Pushed:
    """What the demo pushed to the ingest and what came back."""

    #: Final HTTP status by what was pushed: genuine, forged, redelivered, confirmation...
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    forged_ids: set[str] = field(default_factory=set)  # as the ingest would name them
    smn: int = 0
    mfs: int = 0

    def count(self, what: str) -> int:
        return sum(n for (kind, _), n in self.answers.items() if kind == what)

    def unexpected(self) -> list[str]:
        """Answers other than planned: genuine ones 200, forged ones and the confirmation
        on a host the ingest must not call 403."""
        wanted = {
            "genuine": 200,
            "redelivered": 200,
            "confirmation": 200,
            "forged": 403,
            "confirmation elsewhere": 403,
        }
        return [
            f"{what}: {status} x{n}"
            for (what, status), n in sorted(self.answers.items())
            if wanted.get(what) != status
        ]


async def push_seed(pusher: Pusher, plan: Plan, simulator_url: str) -> Pushed:
    """Push every planned notification, the forgeries, the redeliveries and two subscription
    confirmations (one on the simulator, which the ingest may call; one elsewhere), with
    ``SENDERS`` in flight at once."""
    signer = pusher.signer
    assert signer is not None
    pushed = Pushed()
    gate = asyncio.Semaphore(SENDERS)

    async def send(what: str, push: Awaitable[int]) -> None:
        async with gate:
            pushed.answers[what, await push] += 1

    jobs = []
    redelivered: list[dict[str, str]] = []
    for item in plan.pushes:
        if item.transport == "smn":
            envelope = signer.envelope(json.dumps(item.event))
            if len(redelivered) < REDELIVERED_SMN:
                redelivered.append(envelope)
            jobs.append(send("genuine", pusher.send_smn(envelope)))
            pushed.smn += 1
        else:
            jobs.append(send("genuine", pusher.mfs(item.event)))
            pushed.mfs += 1
    for item in plan.pushes[:FORGED_SMN]:
        envelope = signer.envelope(json.dumps(item.event))
        envelope["message"] = envelope["message"].replace('"SUCCEED"', '"FAILED"') + " "
        pushed.forged_ids.add(envelope["message_id"])
        jobs.append(send("forged", pusher.send_smn(envelope)))
    for n, item in enumerate(plan.pushes[:FORGED_MFS]):
        event = {**item.event, "forged": n}  # not a body VOD sent: its own delivery id
        body, _ = mfs_callback(event, FORGED_KEY)
        pushed.forged_ids.add(f"sha256:{hashlib.sha256(body).hexdigest()[:32]}")
        jobs.append(send("forged", pusher.mfs(event, key=FORGED_KEY)))
    await asyncio.gather(*jobs)
    # SMN delivers at least once: some messages come again, after their first answer.
    await asyncio.gather(*(send("redelivered", pusher.send_smn(e)) for e in redelivered))
    for what, url in (
        ("confirmation", f"{simulator_url}{SUBSCRIBE_PATH}?token=demo-subscription"),
        ("confirmation elsewhere", "https://subscribe.example.net/confirm?token=stolen"),
    ):
        invited = signer.envelope(
            "You are invited to subscribe to topic vod-events.",
            kind="SubscriptionConfirmation",
            subscribe_url=url,
        )
        await send(what, pusher.send_smn(invited))
    return pushed


def cover_origin(source: str | None) -> str:
    """How an asset got its cover, from the snapshot the simulator set it from."""
    if source is None:
        return "none"
    if "/snapshot/dots/0." in source:
        return "regenerated"
    if "/snapshot/sample/" in source:
        return "fallback: existing snapshot"
    return "fallback: requested snapshots"
