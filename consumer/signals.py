"""SIGTERM and SIGINT for the two long-running commands (the daemon and the ingest).

The first signal starts a graceful stop; a second one means the operator will not wait:
the log is flushed and the process exits at once, with no drain and no commit.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from consumer.errors import ExitCode
from consumer.logs import flush, get_logger


def stop_on_signals(stop: asyncio.Event, first: Callable[[], object]) -> None:
    """Set ``stop`` on the first signal, right after ``first()`` (which should make the
    process stop taking new work at once); exit ``ExitCode.FORCED`` on the second."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            flush()
            os._exit(ExitCode.FORCED)
        get_logger().info("shutdown_requested", signal=signum.name)
        stop.set()  # first: a second signal must force the exit even if first() raised
        first()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
