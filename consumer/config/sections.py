"""The sections of the configuration file, one model each (``vod`` and ``covers`` in
``vod.py``). Defaults here are the documented defaults of ``config/consumer.yaml``."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "REQUIRED_WITH",
    "ConsumerSettings",
    "Count",
    "DeadLetterSettings",
    "Fraction",
    "HttpSettings",
    "KafkaSettings",
    "LogSettings",
    "MatchSpec",
    "Millis",
    "Number",
    "Port",
    "RetrySettings",
    "RouteSpec",
    "Seconds",
    "TierSpec",
    "TopicsSettings",
    "TracingSettings",
    "dead_letter_topic",
    "tier_topic",
    "valid_topic",
]

# A custom error type lets the formatter point at the missing key itself rather
# than at the section whose validator noticed it.
REQUIRED_WITH = "required_with"


def _not_a_bool(value: object) -> object:
    # YAML's `true` would otherwise pass as the number 1.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")  # noqa: TRY004  # pydantic wants ValueError
    return value


# Any numeric setting, also one typed inline elsewhere (consumer/config/vod.py).
Number = BeforeValidator(_not_a_bool)
# Kafka's wire protocol packs timeouts, fetch sizes and partition counts as Int32 (and the
# replication factor as Int16): a larger value failed at the first request, with a struct
# error long after start.
_INT32_MAX = 2**31 - 1
Millis = Annotated[int, Field(gt=0, le=_INT32_MAX), Number]
# Finite: an `.inf` timeout or window would wait for ever.
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False), Number]
Count = Annotated[int, Field(ge=1), Number]
_Int32Count = Annotated[int, Field(ge=1, le=_INT32_MAX), Number]
Fraction = Annotated[float, Field(gt=0, le=1), Number]
Port = Annotated[int, Field(ge=0, le=65535), Number]  # 0: any free port
_NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class KafkaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: _NonEmpty = "127.0.0.1:9092"
    group_id: _NonEmpty = "cover-consumer"
    topic: _NonEmpty = "vod-cover-events"
    client_id: _NonEmpty = "cover-consumer"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    session_timeout_ms: Millis = 45_000
    heartbeat_interval_ms: Millis = 3_000
    max_poll_interval_ms: Millis = 300_000
    request_timeout_ms: Millis = 30_000
    # Bytes one fetch may bring (all partitions / one partition): the read-ahead buffer.
    fetch_max_bytes: _Int32Count = 16 * 2**20
    max_partition_fetch_bytes: _Int32Count = 2**20

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if not self.security_protocol.startswith("SASL_"):
            return self
        # An empty string is as useless to the broker as a missing value.
        missing = [
            name
            for name in ("sasl_mechanism", "sasl_username", "sasl_password")
            if not _plain(getattr(self, name))
        ]
        if missing:
            raise PydanticCustomError(
                REQUIRED_WITH,
                "required when kafka.security_protocol is {protocol}",
                {"protocol": self.security_protocol, "missing": missing},
            )
        return self

    @model_validator(mode="after")
    def _heartbeat_within_the_session(self) -> KafkaSettings:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError(
                "heartbeat_interval_ms must be below session_timeout_ms (Kafka advises a third)"
            )
        return self


class ConsumerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Records fetched and not yet finished, across all partitions.
    max_in_flight: Count = 256
    # Fetched but not yet committable in one partition: bounds the uncommitted
    # window, and with it the duplicates replayed after a crash.
    max_pending_per_partition: Count = 1000
    commit_interval: Seconds = 1.0
    shutdown_timeout: Seconds = 25.0
    revoke_timeout: Seconds = 10.0
    poll_timeout: Seconds = 0.5
    fetch_max_records: Count = 500
    # A handler call running longer is cancelled and counts as a transient failure.
    handler_timeout: Seconds = 120.0
    # While the broker cannot be reached at start, keep trying (alive, not ready) this
    # long before giving up with exit code 1.
    start_timeout: Seconds = 300.0


class TierSpec(BaseModel):
    """A delayed-retry tier: a topic whose records are due a fixed delay after they were written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay: Seconds
    # Default: <kafka.topic>.retry.<delay>, e.g. vod-cover-events.retry.10m
    topic: _NonEmpty | None = None


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # In-process attempts of one handler (the first call included), with exponential
    # backoff and full jitter, holding only that asset's queue.
    quick_attempts: Count = 3
    quick_base_delay: Seconds = 0.2
    quick_max_delay: Seconds = 5.0
    # Total time one handler may spend in quick retries before going to a tier.
    quick_budget: Seconds = 15.0
    # Calls of a handler raising unexpected exceptions before the event is dead-lettered.
    unexpected_attempts: Count = 3
    # Each delayed retry goes to a later tier; after the last, the next handler or the DLQ.
    tiers: list[TierSpec] = Field(
        default_factory=lambda: [TierSpec(delay=60), TierSpec(delay=600), TierSpec(delay=3600)]
    )

    @field_validator("tiers")
    @classmethod
    def _tiers_grow(cls, tiers: list[TierSpec]) -> list[TierSpec]:
        # A retry always goes to a later tier: their delays must increase for "later" to
        # mean "longer", and a tier's topic holds one delay only.
        delays = [tier.delay for tier in tiers]
        if any(later <= earlier for earlier, later in itertools.pairwise(delays)):
            raise ValueError("tier delays must increase from one tier to the next")
        topics = [tier.topic for tier in tiers if tier.topic is not None]
        if len(topics) != len(set(topics)):
            raise ValueError("two tiers name the same topic")
        return tiers


class DeadLetterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Default: <kafka.topic>.dlq
    topic: _NonEmpty | None = None
    # Stop consuming when more than `guard_threshold` of the last `guard_window` final
    # outcomes were dead letters (once at least `guard_min_records` were seen).
    guard_window: Count = 200
    guard_threshold: Fraction = 0.5
    guard_min_records: Count = 50


class TopicsSettings(BaseModel):
    """What `cover-consumer topics ensure` creates when a topic is missing, and the topic
    configs it owns (consumer/redelivery/topics.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partitions: _Int32Count = 6
    replication_factor: Annotated[int, Field(ge=1, le=2**15 - 1), Number] = 3
    # Writes with acks=all need this many in-sync replicas (capped at a topic's replication
    # factor): with 2 of 3, one broker down loses no acknowledged retry or dead letter.
    min_insync_replicas: Count = 2
    # How long dead letters are kept: long enough to come back from a holiday and replay.
    dead_letter_retention: Seconds = 14 * 24 * 3600.0


class HttpSettings(BaseModel):
    """The side server: /livez, /readyz, /metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # All interfaces: probes and scrapes come from outside the pod.
    host: _NonEmpty = "0.0.0.0"
    port: Port = 8080
    # /livez fails when the consume loop made no progress for this long.
    liveness_timeout: Seconds = 60.0


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["json", "console"] = "json"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class TracingSettings(BaseModel):
    """OpenTelemetry spans (needs the ``tracing`` extra: opentelemetry-sdk); where they go
    is OpenTelemetry's own configuration. Off, records' trace ids still reach the lines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False


class MatchSpec(BaseModel):
    """Which events a route takes; a field left ``None`` matches anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: str | None = None
    status: str | None = None
    cover_type: str | None = None


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: MatchSpec = Field(default_factory=MatchSpec)
    handlers: list[_NonEmpty] = Field(min_length=1)


_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def valid_topic(name: str) -> bool:
    """Whether Kafka takes ``name`` as a topic (up to 249 of ``a-zA-Z0-9._-``, not ``.`` or
    ``..``): a client subscribed to another waits for ever, saying nothing."""
    return _TOPIC_NAME.fullmatch(name) is not None and name not in (".", "..")


def tier_topic(main: str, tier: TierSpec) -> str:
    """A tier's topic: configured, else ``<main>.retry.<delay>`` (``.retry.10m``)."""
    return tier.topic or f"{main}.retry.{_label(tier.delay)}"


def dead_letter_topic(main: str, dead_letter: DeadLetterSettings) -> str:
    return dead_letter.topic or f"{main}.dlq"


def _label(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value
