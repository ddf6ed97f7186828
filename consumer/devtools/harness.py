"""``cover-consumer run`` (or ``ingest``) as a child process, and its JSON lines read back:
one harness for the tests, the demo and the benchmark.

The child's environment is this one without ``COVER_CONSUMER*`` variables and with an
empty secrets directory, so a developer's own settings never change a run; what a run
needs it passes explicitly (``env``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

__all__ = ["FAST_GROUP", "DaemonProcess", "JsonLines", "clean_env"]

# Kafka's minimum session: Tansu delays a group's first join by half the session timeout.
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
_REPO = Path(__file__).resolve().parents[2]


def clean_env(secrets_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, minus ``COVER_CONSUMER*``, secrets read from
    ``secrets_dir`` (which need not exist), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("COVER_CONSUMER")}
    env["COVER_CONSUMER_SECRETS_DIR"] = str(secrets_dir)
    # A checkout that is not installed still runs its own code.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class JsonLines:
    """A file of JSON lines another process appends to, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._tail = b""
        #: Every complete line parsed so far (lines that are not JSON objects are skipped).
        self.lines: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """Parse what was appended since the last call; return the new lines."""
        new: list[dict[str, Any]] = []
        for raw in self._complete():
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a line cut by SIGKILL, or a library's non-JSON output
            if isinstance(line, dict):
                new.append(line)
        self.lines.extend(new)
        return new

    def count(self, pattern: re.Pattern[bytes]) -> int:
        """How many of the lines appended since the last call match ``pattern`` (bytes, no
        JSON parsing: cheap enough to follow a daemon writing 100,000 lines a second)."""
        return sum(1 for raw in self._complete() if pattern.search(raw))

    def events(self, name: str) -> list[dict[str, Any]]:
        self.poll()
        return [line for line in self.lines if line.get("event") == name]

    def _complete(self) -> list[bytes]:
        with self.path.open("rb") as out:
            out.seek(self._offset)
            data = out.read()
        self._offset += len(data)
        *lines, self._tail = (self._tail + data).split(b"\n")
        return lines


class DaemonProcess:
    """A ``cover-consumer run`` (or ``command``, e.g. ``ingest``) child process writing its
    lines (stdout and stderr) to ``out``."""

    #: Every daemon started, so a test that fails half-way cannot leave one running.
    started: ClassVar[list[DaemonProcess]] = []

    def __init__(
        self,
        out: Path,
        env: Mapping[str, str],
        config: Path | None = None,
        stderr: Path | None = None,
        command: str = "run",
    ) -> None:
        self.out, self.command = out, command
        argv = [sys.executable, "-m", "consumer", command]
        if config is not None:
            argv += ["--config", str(config)]
        with out.open("wb") as stdout:
            err = stderr.open("wb") if stderr is not None else None
            try:
                self.process = subprocess.Popen(
                    argv,
                    cwd=_REPO,
                    env=dict(env),
                    stdout=stdout,
                    stderr=err if err is not None else subprocess.STDOUT,
                )
            finally:
                if err is not None:
                    err.close()
        self.log = JsonLines(out)
        DaemonProcess.started.append(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def lines(self) -> list[dict[str, Any]]:
        self.log.poll()
        return self.log.lines

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.log.events(name)

    def outcomes(self) -> list[dict[str, Any]]:
        return self.events("record_processed")

    def joined(self) -> bool:
        return bool(self.events("consumer_started"))

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.process.returncode}) waiting for {what}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    async def until_ready(self, http: aiohttp.ClientSession, port: int, timeout: float) -> None:
        """Until its ``/readyz`` on ``port`` answers 200; raise RuntimeError, with its output,
        if it exits first or is not ready in ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        exited = self.process.poll()
        state = f"exited ({exited})" if exited is not None else f"not ready in {timeout:g} s"
        raise RuntimeError(f"{self.command} {state}; its output: {self.out}")

    def terminate(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM; return (exit code, seconds until exit)."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - began

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    @classmethod
    def kill_all(cls) -> None:
        """Kill every daemon still running (a test's clean-up)."""
        while cls.started:
            cls.started.pop().kill()
