"""``cover-consumer simulate-vod``: the VOD simulator as a process of its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from consumer.devtools.simulator.app import run_simulator
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
    for asset in _seed(args.seed) if args.seed else []:
        state.add_asset(
            asset["asset_id"],
            cover=asset.get("cover"),
            snapshots=asset.get("snapshots", ()),
            thumbnail_status=asset.get("thumbnail_status"),
        )
    server = await run_simulator(args.host, args.port, state)
    print(f"VOD simulator on {server.url}, project {args.project_id}", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()
    return 0
