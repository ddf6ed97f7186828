"""``cover-consumer simulate-vod``: the VOD simulator as a process of its own; with
``--notify-url``, it pushes its notifications to an ingest as VOD does (SMN signed with a
certificate it makes, or MFS with a key), trying again on 5xx as SMN does."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from consumer.devtools.simulator.app import run_simulator
from consumer.devtools.simulator.notify import (
    DEFAULT_TOPIC,
    SMN_RETRIES,
    Pusher,
    SmnSigner,
    TaskAnnouncer,
)
from consumer.testing.vodsim import Quotas, SimState

__all__ = ["add_arguments", "main", "simulate"]

# The secret key is never a command-line argument (ps shows those to every user): it comes
# from this variable or a file, else the simulator's well-known default.
SECRET_ENV = "COVER_CONSUMER_SIM_SECRET_KEY"
DEFAULT_SECRET = "sim-secret-key"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cover-consumer simulate-vod",
        description="Serve the VOD simulator (the three asset APIs, signed) until SIGTERM.",
    )
    add_arguments(parser)
    code: int = asyncio.run(simulate(parser.parse_args(argv)))
    return code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on")
    parser.add_argument(
        "--project-id", metavar="ID", default="sim-project", help="the one project it serves"
    )
    parser.add_argument(
        "--access-key", metavar="AK", default="sim-access-key", help="the AK it accepts"
    )
    parser.add_argument(
        "--secret-key-file",
        metavar="FILE",
        type=Path,
        help=f"file holding the SK it accepts (else ${SECRET_ENV}, else {DEFAULT_SECRET!r})",
    )
    parser.add_argument(
        "--create-on-demand", action="store_true", help="unknown asset ids exist, with snapshots"
    )
    parser.add_argument(
        "--task-delay", metavar="S", type=float, default=2.0, help="seconds per snapshot task"
    )
    parser.add_argument(
        "--task-failure-rate",
        metavar="SHARE",
        type=float,
        default=0.0,
        help="share of snapshot tasks that fail",
    )
    parser.add_argument(
        "--write-quota", metavar="N", type=int, default=100, help="writes per quota window"
    )
    parser.add_argument(
        "--query-quota", metavar="N", type=int, default=1500, help="queries per quota window"
    )
    parser.add_argument(
        "--quota-window",
        metavar="S",
        type=float,
        default=60.0,
        help="seconds the quotas count over",
    )
    parser.add_argument(
        "--gateway-spelling",
        choices=("APIG", "APIGW"),
        default="APIG",
        help="how gateway error codes are spelt (Huawei's answers use both)",
    )
    parser.add_argument(
        "--seed",
        metavar="FILE",
        type=Path,
        help="JSON list of assets: {asset_id, cover?, snapshots? (seconds), thumbnail_status?}",
    )
    notify = parser.add_argument_group(
        "notifications", "push VOD's notifications to an ingest (cover-consumer ingest)"
    )
    notify.add_argument(
        "--notify-url",
        help="the ingest's base URL: finished snapshot tasks are POSTed to URL/smn or URL/mfs",
    )
    notify.add_argument(
        "--notify-transport",
        choices=["smn", "mfs", "both"],
        default="smn",
        help="push as SMN (signed with the simulator's certificate), as MFS callbacks, or "
        "alternately (default: %(default)s)",
    )
    notify.add_argument(
        "--smn-cert-out",
        type=Path,
        help="write the simulator's SMN signing certificate (PEM) here, for "
        "ingest.smn.certificates",
    )
    notify.add_argument(
        "--smn-topic-urn",
        default=DEFAULT_TOPIC,
        help="the topic_urn SMN messages carry, for ingest.smn.topic_urns (default: %(default)s)",
    )
    notify.add_argument(
        "--mfs-key-file", type=Path, help="sign MFS callbacks with the key in this file"
    )
    notify.add_argument(
        "--notify-retry-delays",
        type=_delays,
        default=(1.0, 5.0, 30.0, 60.0, 300.0, 600.0),
        help=f"seconds before each of SMN's {SMN_RETRIES} tries again after a 5xx or no "
        "answer (comma-separated)",
    )
    notify.add_argument(
        "--announce-seeded",
        action="store_true",
        help="at start, push a coverComplete for each seeded asset (SUCCEED with a cover, "
        "FAILED without)",
    )


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated seconds, e.g. 1,5,30") from None
    if any(delay < 0 for delay in delays):
        raise argparse.ArgumentTypeError("delays cannot be negative")
    return delays


def _secret_key(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return os.environ.get(SECRET_ENV) or DEFAULT_SECRET


def _seed(path: Path) -> list[dict[str, Any]]:
    assets = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(assets, list) or not all(
        isinstance(a, dict) and isinstance(a.get("asset_id"), str) for a in assets
    ):
        raise SystemExit(f"{path}: expected a JSON list of objects with an asset_id")
    return assets


async def simulate(args: argparse.Namespace) -> int:
    state = SimState(
        project_id=args.project_id,
        keys={args.access_key: _secret_key(args.secret_key_file)},
        create_on_demand=args.create_on_demand,
        task_delay=args.task_delay,
        task_failure_rate=args.task_failure_rate,
        quotas=Quotas(args.write_quota, args.query_quota, args.quota_window),
        gateway_spelling=args.gateway_spelling,
    )
    seeded = _seed(args.seed) if args.seed else []
    for asset in seeded:
        state.add_asset(
            asset["asset_id"],
            cover=asset.get("cover"),
            snapshots=asset.get("snapshots", ()),
            thumbnail_status=asset.get("thumbnail_status"),
        )
    async with contextlib.AsyncExitStack() as stack:
        announcer = None
        if args.notify_url:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            announcer = TaskAnnouncer(_pusher(args, http), args.notify_transport)
            state.on_task_done = announcer
        server = await run_simulator(args.host, args.port, state)
        stack.push_async_callback(server.stop)
        print(f"VOD simulator on {server.url}, project {args.project_id}", file=sys.stderr)
        if announcer is not None:
            print(f"pushing notifications to {args.notify_url}", file=sys.stderr)
            if args.announce_seeded:
                await asyncio.gather(*(_announce(announcer, state, a["asset_id"]) for a in seeded))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    return 0


def _pusher(args: argparse.Namespace, http: aiohttp.ClientSession) -> Pusher:
    signer = SmnSigner(topic_urn=args.smn_topic_urn)
    if args.smn_cert_out is not None:
        signer.write_certificate(args.smn_cert_out)
    key = args.mfs_key_file.read_bytes().strip() if args.mfs_key_file else None
    return Pusher(http, args.notify_url, signer, key, retry_delays=args.notify_retry_delays)


async def _announce(announcer: TaskAnnouncer, state: SimState, asset_id: str) -> None:
    """A coverComplete for a seeded asset, as VOD sent it when the asset was made."""
    asset = state.assets[asset_id]
    info: dict[str, Any] = {
        "asset_id": asset_id,
        "cover_type": "HEAD_FRAME_COVER",
        "status": "SUCCEED" if asset.cover_url else "FAILED",
    }
    if asset.cover_url:
        info["cover_urls"] = [{"offset": 0, "url": asset.cover_url}]
    else:
        info |= {"error_code": "VOD.10013", "error_msg": "null"}
    await announcer.push("coverComplete", {"event_type": "coverComplete", "cover_info": info})
