"""consumer.ingress.server: what the ingest says once it listens, its open doors included."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import structlog
from structlog.testing import capture_logs
from structlog.typing import EventDict

from consumer.config import Settings
from consumer.ingress.server import _started


def started_lines(ingest: dict[str, Any]) -> list[EventDict]:
    settings = Settings(kafka={"topic": "vod-cover-events"}, ingest=ingest)
    runner: Any = SimpleNamespace(addresses=[("127.0.0.1", 8081)])
    with capture_logs() as lines:
        _started(settings, runner, pinned_names=[], log=structlog.get_logger())
    return lines


def test_without_topic_urns_it_warns_that_any_tenants_signed_topic_gets_in() -> None:
    lines = started_lines({})

    [started] = [line for line in lines if line["event"] == "ingest_started"]
    assert started["smn_topic_urns"] == "any"
    [warning] = [line for line in lines if line["event"] == "smn_any_topic"]
    assert warning["log_level"] == "warning"
    assert "ingest.smn.topic_urns" in warning["action"]


def test_with_topic_urns_and_an_mfs_key_it_warns_of_nothing() -> None:
    lines = started_lines({"smn": {"topic_urns": ["urn:smn:r:p:vod"]}, "mfs": {"key": "k" * 32}})

    assert [line["event"] for line in lines] == ["ingest_started"]


def test_without_an_mfs_key_it_warns_that_mfs_takes_any_caller() -> None:
    lines = started_lines({"smn": {"topic_urns": ["urn:smn:r:p:vod"]}})

    [warning] = [line for line in lines if line["event"] == "mfs_unauthenticated"]
    assert "ingest.mfs.key" in warning["action"]
