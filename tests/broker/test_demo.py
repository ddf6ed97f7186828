"""``make demo`` end to end: the VOD simulator pushing a thousand signed notifications
(SMN and MFS) through the ingest, the daemon on embedded defaults. The demo checks its
own claims (every forwarded notification is on the topic once and no forged one, every
FAILED asset ends with a cover or a dead letter saying why, covered assets are left alone,
the quota holds, every malformed record is dead-lettered, both exit 0) and exits 1 when
one fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import REPO


@pytest.mark.slow
def test_the_demo_runs_the_whole_loop_and_its_own_checks_pass() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "consumer", "demo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "checks:" in run.stdout
    assert "  FAIL  " not in run.stdout, output[-6000:]
    assert "covers on the" in run.stdout
    assert "regenerated" in run.stdout
    assert "dead letters:" in run.stdout
    assert "daemon exit code 0" in run.stdout
    assert "\ningest: received " in run.stdout
    assert "no forged notification reached the topic" in run.stdout
