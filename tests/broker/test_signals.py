"""Signals as a container delivers them: the daemon as PID 1 still drains on SIGTERM.

(A second signal forcing exit 130 is tested in test_cli.py.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from consumer.devtools.broker import create_topic
from tests.support import (
    REPO,
    cover_event,
    daemon_config,
    produce,
)

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0, reason="needs unshare and root"
)
def test_daemon_as_pid_1_handles_sigterm_and_drains(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(produce(bootstrap, name, [(None, cover_event(f"a{i}"), 0) for i in range(20)]))
    config = daemon_config(tmp_path, bootstrap, name, name, "tests.handlers:random_delay")
    out = tmp_path / "d.log"
    # A PID namespace makes the daemon PID 1, where the kernel drops every signal the
    # process has no handler for: SIGTERM works here only if the daemon handles it itself.
    wrapper = subprocess.Popen(
        [
            "unshare",
            "--fork",
            "--pid",
            "--kill-child",
            sys.executable,
            "-m",
            "consumer",
            "run",
            "--config",
            str(config),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while out.read_bytes().count(b'"record_processed"') < 20:
        assert wrapper.poll() is None, out.read_text()
        assert time.monotonic() < deadline, "records not processed in time"
        time.sleep(0.05)
    (daemon,) = psutil.Process(wrapper.pid).children()
    assert _pid_in_own_namespace(daemon.pid) == 1
    daemon.send_signal(signal.SIGTERM)

    assert wrapper.wait(timeout=15) == 0
    assert b'"drained":true' in out.read_bytes()


def _pid_in_own_namespace(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid line")
