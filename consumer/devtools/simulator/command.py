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

SECRET_ENV = "COVER_CONSUMER_SIM_SECRET_KEY"  # so the key need not be on a command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cover-consumer simulate-vod",
        description="Serve the VOD simulator (the three asset APIs, signed) until SIGTERM.",
    )
    add_arguments(parser)
    code: int = asyncio.run(simulate(parser.parse_args(argv)))
    return code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--project-id", default="sim-project")
    parser.add_argument("--access-key", default="sim-access-key")
    parser.add_argument(
        "--secret-key",
        default=os.environ.get(SECRET_ENV, "sim-secret-key"),
        help=f"or ${SECRET_ENV}",
    )
    parser.add_argument(
        "--create-on-demand", action="store_true", help="unknown asset ids exist, with snapshots"
    )
    parser.add_argument("--task-delay", type=float, default=2.0, help="seconds per snapshot task")
    parser.add_argument("--task-failure-rate", type=float, default=0.0)
    parser.add_argument("--write-quota", type=int, default=100, help="writes per window")
    parser.add_argument("--query-quota", type=int, default=1500, help="queries per window")
    parser.add_argument("--quota-window", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--seed",
        type=Path,
        help="JSON list of assets: {asset_id, cover?, snapshots? (seconds), thumbnail_status?}",
    )


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
        keys={args.access_key: args.secret_key},
        create_on_demand=args.create_on_demand,
        task_delay=args.task_delay,
        task_failure_rate=args.task_failure_rate,
        quotas=Quotas(args.write_quota, args.query_quota, args.quota_window),
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
