"""``cover-consumer``: run the daemon or the ingest, check a config, operate the topics;
dev commands.

The dev commands (``demo``, ``simulate-vod``) live in ``consumer.devtools`` and need the
dev extra; they are found by import path when asked for, so the production commands
never load them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import consumer
from consumer.config import Settings, load_settings, render_masked, secret_values
from consumer.errors import ConfigError, ExitCode
from consumer.logs import configure, flush, get_logger

__all__ = ["main"]

# name -> (the command's ``main(argv) -> int``, help)
_DEV_COMMANDS = {
    "demo": (
        "consumer.devtools.demo:main",
        "run the demo on an embedded broker (needs the dev extra)",
    ),
    "simulate-vod": (
        "consumer.devtools.simulator.command:main",
        "serve the VOD simulator (needs the dev extra)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _DEV_COMMANDS:
        return _dev_command(args_list[0], args_list[1:])
    args = _parser().parse_args(args_list)
    try:
        settings = load_settings(args.config)
        if args.command == "check-config":
            from consumer.dispatch.routing import effective_routes, routes_for

            routes_for(settings)  # every route can match and every handler resolves
            sys.stdout.write(render_masked(settings, effective_routes(settings)))
            return ExitCode.OK
        if args.command in ("run", "ingest"):
            configure(settings.log, secret_values(settings))
            return _run_daemon(settings) if args.command == "run" else _run_ingest(settings)
        # An operator command's report is its stdout; what the libraries log goes to stderr.
        configure(settings.log, secret_values(settings), stream=sys.stderr)
        return _run_operation(args, settings)
    except ConfigError as exc:
        print(f"cover-consumer: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    finally:
        flush()  # lines of the loop's last turn


def _dev_command(name: str, argv: list[str]) -> int:
    path, _ = _DEV_COMMANDS[name]
    module_name, _, attr = path.partition(":")
    try:
        command: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError as exc:
        print(
            f"cover-consumer {name}: needs the dev extra ({exc.name} is missing); "
            "install it with: pip install 'cover-consumer[dev]'",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    return command(argv)


def _run_daemon(settings: Settings) -> int:
    from consumer.service import daemon

    try:
        return asyncio.run(daemon.run(settings))
    except ConfigError:
        raise
    except Exception:
        # Through the log pipeline, so even a crash is one scrubbed JSON line.
        get_logger().exception("fatal_error")
        return ExitCode.FATAL


def _run_ingest(settings: Settings) -> int:
    from consumer.ingress import server

    try:
        return asyncio.run(server.run(settings))
    except ConfigError:
        raise
    except Exception:
        get_logger().exception("fatal_error")
        return ExitCode.FATAL


def _run_operation(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(_operate(args, settings))
    except ConfigError:
        raise
    except (KafkaError, OSError) as exc:
        # The broker unreachable or refusing is the operator's everyday failure: one
        # scrubbed line saying so (it was an unscrubbed traceback on stderr), no stack.
        text = str(exc)  # aiokafka's errors name their class already
        name = type(exc).__name__
        get_logger().error("fatal_error", error=text if name in text else f"{name}: {text}")
        return ExitCode.FATAL
    except Exception:
        get_logger().exception("fatal_error")
        return ExitCode.FATAL


async def _operate(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.redelivery import ops

    if args.command == "topics":
        report = await ops.ensure_topics(settings, sys.stdout, args.keda_max_replicas)
        return ExitCode.OK if report.ok else ExitCode.FATAL
    if args.action == "list":
        await ops.dlq_list(settings, sys.stdout)
    else:
        await ops.dlq_replay(
            settings, sys.stdout, args.reason, args.since, args.limit, args.dry_run
        )
    return ExitCode.OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cover-consumer",
        description="Consume Huawei VOD cover events from Kafka and keep video covers healthy.",
        epilog="Exit codes: 0 clean shutdown, 1 fatal error, 2 invalid config or usage, "
        "130 forced by a second signal.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {consumer.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run the daemon until SIGTERM/SIGINT"),
        (
            "ingest",
            "serve POST /smn and /mfs: VOD's notifications to the Kafka topic, until SIGTERM",
        ),
        ("check-config", "print the effective config (secrets masked); exit 2 if invalid"),
    ):
        _config_option(commands.add_parser(name, help=text, description=text))
    topics = commands.add_parser("topics", help="operate on the topics")
    topic_actions = topics.add_subparsers(dest="action", required=True)
    text = (
        "create the main, retry, dead-letter and replay topics that are missing;"
        " set the configs it owns"
    )
    ensure = topic_actions.add_parser("ensure", help=text, description=text)
    _config_option(ensure)
    ensure.add_argument(
        "--keda-max-replicas",
        type=int,
        metavar="N",
        help="fail (exit 1) when the main topic has fewer than N partitions: the "
        "ScaledObject's maxReplicaCount",
    )
    dlq = commands.add_parser("dlq", help="inspect or replay dead letters")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    text = "count dead letters by reason, with the oldest and newest of each"
    _config_option(dlq_actions.add_parser("list", help=text, description=text))
    text = "republish dead letters to the main topic, each at most once"
    replay = dlq_actions.add_parser("replay", help=text, description=text)
    _config_option(replay)
    replay.add_argument("--reason", help="only dead letters whose reason contains this")
    replay.add_argument(
        "--since",
        type=_utc_unless_told,
        help="only those written at or after (ISO 8601; UTC unless it says, as dlq list prints)",
    )
    replay.add_argument("--limit", type=_at_least_one, help="at most this many")
    replay.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    for name, (_, text) in _DEV_COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)  # its own parser answers --help
    return parser


def _utc_unless_told(text: str) -> datetime:
    # A time copied from `dlq list` (UTC, "Z") or typed without a zone means UTC, not the
    # zone of the machine the operator happens to run this on.
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _at_least_one(text: str) -> int:
    # "At most 0" would replay one: the limit is checked after each dead letter is taken.
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return number


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file (default: $COVER_CONSUMER_CONFIG, else embedded defaults)",
    )
