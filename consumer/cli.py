"""``cover-consumer``: run the daemon, check a config, or run the demo."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from consumer import daemon
from consumer.config import Settings, load_settings, render_masked, secret_values
from consumer.errors import ConfigError
from consumer.logs import configure, get_logger

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from consumer.devtools.demo import main as demo  # dev extra only

            code: int = demo()
            return code
        settings = load_settings(args.config)
        if args.command == "check-config":
            from consumer.routing import Router

            Router.from_specs(settings.routes)  # handler names resolve, or it is not valid
            sys.stdout.write(render_masked(settings))
            return daemon.EXIT_OK
        configure(settings.log, secret_values(settings))
        return _run_daemon(settings)
    except ConfigError as exc:
        print(f"cover-consumer: {exc}", file=sys.stderr)
        return daemon.EXIT_CONFIG


def _run_daemon(settings: Settings) -> int:
    try:
        return asyncio.run(daemon.run(settings))
    except ConfigError:
        raise
    except Exception:
        # Through the log pipeline, so even a crash is one scrubbed JSON line.
        get_logger().exception("fatal_error")
        return daemon.EXIT_FATAL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cover-consumer",
        description="Consume Huawei VOD cover events from Kafka and keep video covers healthy.",
        epilog="Exit codes: 0 clean shutdown, 1 fatal error, 2 invalid config or usage, "
        "130 forced by a second signal.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run the daemon until SIGTERM/SIGINT"),
        ("check-config", "print the effective config (secrets masked); exit 2 if invalid"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--config",
            metavar="FILE",
            help="YAML config file (default: $COVER_CONSUMER_CONFIG, else embedded defaults)",
        )
    commands.add_parser("demo", help="run the demo on an embedded broker (needs the dev extra)")
    return parser
