"""Real-broker fixtures: one embedded Tansu per session (or $KAFKA_BOOTSTRAP_SERVERS)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs
from structlog.typing import EventDict

from consumer.devtools.broker import EmbeddedBroker, free_port
from consumer.devtools.harness import DaemonProcess, clean_env
from consumer.handlers import Clients
from tests.support import Proxy


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = EmbeddedBroker(log_file=tmp_path_factory.mktemp("broker") / "tansu.log")
    yield broker.start()
    broker.stop()


@pytest.fixture
def behind_proxy() -> Iterator[tuple[Proxy, str]]:
    """A broker of its own that clients reach only through a proxy the test can cut (the
    proxy is what the broker advertises); the proxy starts down."""
    broker = EmbeddedBroker(advertised_port=free_port())
    proxy = Proxy(broker.advertised_port, broker.port)
    with broker:
        yield proxy, f"127.0.0.1:{proxy.port}"
    proxy.down()


@pytest.fixture
def name() -> str:
    """A fresh topic / group name, so tests never see each other's records or offsets."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _no_daemon_left_behind() -> Iterator[None]:
    yield
    DaemonProcess.kill_all()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Handler clients over a real aiohttp session (no VOD)."""
    async with aiohttp.ClientSession() as http:
        yield Clients(http)


@pytest.fixture
def logs() -> Iterator[list[EventDict]]:
    """Every structlog entry logged during the test."""
    with capture_logs() as entries:
        yield entries


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A child process's environment: this one without COVER_CONSUMER* variables, and never
    a real /etc/cover-consumer/secrets of the test host."""
    return clean_env(tmp_path / "no-secrets")


@pytest.fixture
def secret() -> str:
    return f"S3cr3t-{uuid.uuid4().hex}"


@pytest.fixture
def config_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This process without COVER_CONSUMER* variables, reading secret files from an empty
    ``tmp_path / "secrets"`` (never a real /etc/cover-consumer/secrets); returns it."""
    for name in list(os.environ):
        if name.upper().startswith("COVER_CONSUMER"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COVER_CONSUMER_SECRETS_DIR", str(tmp_path / "secrets"))
    return tmp_path / "secrets"
