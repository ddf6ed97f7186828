"""Faults counted end to end with real processes: every record produced reaches its one
outcome, every dead letter is seen by the operator tools."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumer.devtools.broker import create_topic, fetch_all
from tests.support import REPO, daemon_config, header_map, produce, start_daemon

pytestmark = pytest.mark.slow


def tool(config: Path, *args: str) -> str:
    """An operator command's report (its plain lines; aiokafka's JSON lines left out)."""
    result = subprocess.run(
        [sys.executable, "-m", "consumer", *args, "--config", str(config)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith("{"))


def test_every_dead_letter_is_listed_and_replayed_once_when_written_in_batches(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    # The daemon writes dead letters concurrently, so the producer packs several into one
    # batch: the tools must read past the last batch's first record.
    total = 40
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(create_topic(bootstrap, f"{name}.dlq", 1))
    asyncio.run(produce(bootstrap, name, [(b"k%d" % i, b"not json", 0) for i in range(total)]))
    extra = {"dead_letter": {"guard_min_records": 1000}}
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra=extra)
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == total, 60, "every record dead-lettered")
    daemon.terminate()
    letters = asyncio.run(fetch_all(bootstrap, f"{name}.dlq"))
    assert len(letters) == total

    listed = tool(config, "dlq", "list")
    first = tool(config, "dlq", "replay")
    second = tool(config, "dlq", "replay")

    assert listed.startswith(f"{total} dead letters")
    assert first.startswith(f"{total} replayed")
    assert second.startswith("0 replayed")
    main = asyncio.run(fetch_all(bootstrap, name))
    replays = [header_map(r)["cc-replay-of"] for r in main if "cc-replay-of" in header_map(r)]
    assert sorted(replays) == sorted(f"{name}.dlq/0/{r.offset}" for r in letters)
