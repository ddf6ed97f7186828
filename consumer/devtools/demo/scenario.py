"""The demo's scenario: the simulated tenant, its time scale, and the environment the
ingest and the daemon get (no config file: embedded defaults, but for where things are
and how fast time goes)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from consumer.devtools.harness import FAST_GROUP
from consumer.testing.vodsim import Quotas

__all__ = [
    "ACCESS_KEY",
    "COVER_DELAY",
    "LOST_ANSWERS",
    "PROJECT",
    "QUOTAS",
    "RETRY_DELAYS",
    "SMN_TOPIC",
    "TASK_DELAY",
    "TASK_FAILURE_RATE",
    "TIERS",
    "daemon_env",
    "ingest_env",
    "shown",
]

PROJECT = "demo-project"
ACCESS_KEY = "demo-access-key"
SMN_TOPIC = f"urn:smn:cn-north-4:{PROJECT}:vod-events"
QUOTAS = Quotas(writes_per_minute=100, queries_per_minute=1500, window=6.0)
TASK_DELAY = 0.5
TASK_FAILURE_RATE = 0.2
COVER_DELAY = 1.0  # VOD's 3-5 minutes, scaled down: a set cover shows this much later
LOST_ANSWERS = 0.05
TIERS = [{"delay": 2}, {"delay": 5}]
# SMN tries 6 more times after a 5xx, over hours; here within seconds.
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


def daemon_env(
    bootstrap: str, vod_url: str, secret_key: str, names: dict[str, str]
) -> dict[str, str]:
    """Embedded defaults, but for where things are and the time scale."""
    settings = {
        "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        **{f"KAFKA__{key.upper()}": str(value) for key, value in FAST_GROUP.items()},
        "HTTP__PORT": "0",  # any free port: the demo must not collide with anything
        "VOD__ENDPOINT": vod_url,
        "VOD__PROJECT_ID": PROJECT,
        "VOD__ACCESS_KEY": ACCESS_KEY,
        "VOD__SECRET_KEY": secret_key,
        "VOD__QUOTA_WINDOW": f"{QUOTAS.window:g}",  # the simulator's window
        "VOD__CIRCUIT_PROBE_INTERVAL": "1",
        "RETRY__TIERS": json.dumps(TIERS),
        # Shorter than the "retry after" of the cover handlers: they wait in a tier.
        "RETRY__QUICK_BUDGET": "0.5",
        "COVERS__REGENERATE_CHECK_DELAY": "1.5",
        "COVERS__SNAPSHOT_RETRY_AFTER": "1",
        "COVERS__VERIFY_DELAY": "1.5",
        "CONSUMER__SHUTDOWN_TIMEOUT": "10",
        **names,
    }
    return {f"COVER_CONSUMER__{key}": value for key, value in settings.items()}


def ingest_env(
    bootstrap: str, port: int, cert: Path, mfs_key: str, names: dict[str, str]
) -> dict[str, str]:
    """The ingest: where the broker is, the simulator's SMN certificate and topic, the MFS
    key; the simulator (127.0.0.1) stands in for the console's subscription host."""
    settings = {
        "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "INGEST__PORT": str(port),
        "INGEST__SMN__CERTIFICATES": json.dumps([str(cert)]),
        "INGEST__SMN__TOPIC_URNS": json.dumps([SMN_TOPIC]),
        "INGEST__SMN__CONFIRM_HOSTS": json.dumps(["127.0.0.1"]),
        "INGEST__MFS__KEY": mfs_key,
        **{k: v for k, v in names.items() if k == "KAFKA__TOPIC"},
    }
    return {f"COVER_CONSUMER__{key}": value for key, value in settings.items()}


def shown(given: dict[str, str]) -> str:
    shown = [
        f"{key.removeprefix('COVER_CONSUMER__')}="
        f"{'***' if 'SECRET' in key or key.endswith('__KEY') else value}"
        for key, value in given.items()
    ]
    return textwrap.fill(", ".join(shown), 96, initial_indent="  ", subsequent_indent="  ")
