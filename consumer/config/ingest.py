"""The ``ingest`` section: ``cover-consumer ingest``, the HTTP server that takes VOD's
notifications (SMN pushes, MFS callbacks) and produces them to ``kafka.topic``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from consumer.config.sections import Count, Port, Seconds

__all__ = ["HUAWEI_CONFIRM_HOSTS", "IngestSettings", "MfsIngest", "SmnIngest", "TlsIngest"]

#: Where SMN's ``subscribe_url`` points (INGRESS.md): the console and its regional hosts.
HUAWEI_CONFIRM_HOSTS = ("console.huaweicloud.com", "*-console.huaweicloud.com")
# A host name, optionally with a port; "*." stands for one label, "*-" for a prefix
# without dots (the regional consoles: cn-north-4-console.huaweicloud.com).
_HOST_PATTERN = re.compile(r"^(\*\.|\*-)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")


class SmnIngest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # PEM files whose keys may sign SMN messages, besides Huawei's published certificate
    # (shipped with the package).
    certificates: tuple[Path, ...] = ()
    # Topics whose messages are taken; empty: any (the signature proves SMN sent it, not
    # whose topic it is, so set it in production).
    topic_urns: tuple[str, ...] = ()
    # Hosts a SubscriptionConfirmation's subscribe_url may point to ("*-" matches a
    # regional prefix). Only https, except loopback hosts (local tests).
    confirm_hosts: tuple[str, ...] = HUAWEI_CONFIRM_HOSTS
    # Fetch signing_cert_url when no pinned certificate verifies a message (only URLs of
    # the documented shape; no redirects, size-capped, validity checked, cached).
    fetch_certificates: bool = False

    @field_validator("confirm_hosts")
    @classmethod
    def _hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(host.strip().lower() for host in hosts)
        for index, host in enumerate(lowered):
            if not _HOST_PATTERN.match(host):
                raise ValueError(
                    f"entry {index} is not a host name (a leading '*.' or '*-' may stand "
                    "for one label or a regional prefix)"
                )
        return lowered

    @field_validator("certificates")
    @classmethod
    def _files(cls, paths: tuple[Path, ...]) -> tuple[Path, ...]:
        for index, path in enumerate(paths):
            if not path.is_file():
                raise ValueError(f"entry {index} is not a readable file")
        return paths


class MfsIngest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The authentication key generated in the VOD console; null: MFS callbacks are taken
    # unauthenticated. Secret: env or secret file ingest__mfs__key, never this file.
    key: SecretStr | None = None
    # Seconds auth_timestamp may be off this host's clock, either way.
    timestamp_window: Seconds = 600.0

    @field_validator("key")
    @classmethod
    def _not_empty(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not key.get_secret_value().strip():
            raise ValueError("is empty; leave it out (null) to take callbacks unauthenticated")
        return key


class TlsIngest(BaseModel):
    """HTTPS on the ingest port itself (SMN requires HTTPS for production endpoints; or
    terminate TLS in front of it, e.g. in a Kubernetes Ingress)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certfile: Path | None = None
    keyfile: Path | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsIngest:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")
        for name in ("certfile", "keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} is not a readable file")
        return self

    @property
    def enabled(self) -> bool:
        return self.certfile is not None


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Annotated[str, Field(min_length=1)] = "0.0.0.0"
    # One port: POST /smn, POST /mfs, /livez, /readyz, /metrics.
    port: Port = 8081
    max_body_bytes: Count = 1 << 20
    # Requests handled at once; more are answered 503 (the sender retries).
    max_concurrent: Count = 256
    # Seconds from a request's arrival to the broker's acknowledgement; past it 503.
    answer_timeout: Seconds = 4.0
    # Requests per second per source address (token bucket of burst_per_source); more
    # are answered 503, which SMN retries (it drops on any 4xx).
    rate_per_source: Count = 1000
    burst_per_source: Count = 2000
    # Take the source from the last X-Forwarded-For address (behind a trusted proxy).
    trust_forwarded_for: bool = False
    # A repeated SMN message_id or MFS body within this many seconds is not produced again.
    dedup_window: Seconds = 3600.0
    dedup_max_entries: Count = 200_000
    # SIGTERM: requests in progress get this long to finish, then the producer flushes.
    shutdown_timeout: Seconds = 10.0
    smn: SmnIngest = Field(default_factory=SmnIngest)
    mfs: MfsIngest = Field(default_factory=MfsIngest)
    tls: TlsIngest = Field(default_factory=TlsIngest)

    @model_validator(mode="after")
    def _burst_holds_a_second(self) -> IngestSettings:
        if self.burst_per_source < self.rate_per_source:
            raise ValueError("burst_per_source must be at least rate_per_source")
        return self
