"""aiokafka client options from the ``kafka`` settings section."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from consumer.config.sections import KafkaSettings
from consumer.errors import ConfigError

__all__ = ["client_options", "consumer_options"]


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security options shared by consumers, producers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def consumer_options(kafka: KafkaSettings) -> dict[str, Any]:
    return {
        **client_options(kafka),
        "group_id": kafka.group_id,
        # Offsets are committed by the engine, only for records with a final outcome.
        "enable_auto_commit": False,
        "auto_offset_reset": kafka.auto_offset_reset,
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
        "max_poll_interval_ms": kafka.max_poll_interval_ms,
        # Fetched-but-unread data is the one buffer not bounded by max_in_flight: cap it too.
        "fetch_max_bytes": kafka.fetch_max_bytes,
        "max_partition_fetch_bytes": kafka.max_partition_fetch_bytes,
        # aiokafka keeps one fetch in flight per broker: while it long-polls partitions that
        # are caught up, a partition with a backlog whose read-ahead ran dry waits for it.
        # At aiokafka's 500 ms, draining a backlog stalled up to half a second whenever
        # some partitions were done before the others; 100 ms bounds that, at ten empty
        # fetches a second per idle consumer.
        "fetch_max_wait_ms": 100,
    }


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """The TLS context of ``kafka``; a file that cannot be read or loaded is a config error
    naming its key (it was a FileNotFoundError: exit 1, a traceback naming no setting).
    Checked here, at start, not when the file is read: ``check-config`` runs where the
    Secret's files are not (a CI job, a laptop)."""
    files = {"ssl_cafile": kafka.ssl_cafile, "ssl_certfile": kafka.ssl_certfile}
    files["ssl_keyfile"] = kafka.ssl_keyfile
    for name, path in files.items():
        if path is not None and not path.is_file():
            raise ConfigError(f"kafka.{name}: not a readable file")
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
            certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
            keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
            password=kafka.ssl_password.get_secret_value() if kafka.ssl_password else None,
        )
    except (OSError, ssl.SSLError) as exc:  # unreadable, not PEM, a wrong key password
        named = [name for name, path in files.items() if path is not None]
        named += ["ssl_password"] if kafka.ssl_password else []
        keys = ", ".join(f"kafka.{name}" for name in named)
        raise ConfigError(
            f"{keys or 'kafka.security_protocol'}: cannot load the TLS files: "
            f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc.args[-1]}"
        ) from None
    return context
