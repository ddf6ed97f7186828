"""The VOD sections: ``vod`` (where VOD is, how to authenticate, how hard to push it) and
``covers`` (options of the built-in cover handlers)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from consumer.config.sections import REQUIRED_WITH, Count, Number, Seconds

__all__ = ["CoverSettings", "SnapshotKind", "VodSettings"]

SnapshotKind = Literal["sample", "dots", "quantity"]


class VodSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # e.g. https://vod.cn-north-4.myhuaweicloud.com; None: no VOD handlers can run.
    endpoint: str | None = None
    project_id: str | None = None
    # AK/SK signing. A temporary key (IAM's or an agency's) adds its security token, sent
    # signed as X-Security-Token. Given by secret files, they are read again when VOD
    # answers 401, so a renewed or rotated key needs no restart.
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    security_token: SecretStr | None = None
    # Gone: an IAM token lasts 24 hours, so a fixed one failed every call a day after
    # start. Kept as a name only, to refuse it with that reason rather than as unknown.
    auth_token: Annotated[SecretStr | None, Field(exclude=True)] = None
    # Seconds per request.
    timeout: Seconds = 10.0
    # Calls in flight at once. Under 5 on purpose: VOD locks a key after 5 failed
    # signatures in a row, and the circuit opens on the first one.
    max_concurrent_calls: Annotated[int, Field(ge=1, le=4), Number] = 4
    # Per-tenant quotas, calls per minute, shared by all replicas by the work (see
    # consumer.vod.quota).
    write_quota_per_minute: Count = 100
    query_quota_per_minute: Count = 1500
    # Seconds the quotas count over. VOD's is 60: shorten only against the simulator.
    quota_window: Seconds = 60.0
    # Seconds between single probe calls while the circuit is open.
    circuit_probe_interval: Seconds = 30.0

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("auth_token")
    @classmethod
    def _no_token_mode(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raise ValueError(
                "token mode was removed: an IAM token expires after 24 hours; set "
                "vod.access_key and vod.secret_key (and vod.security_token for a temporary key)"
            )
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> VodSettings:
        pair = self.access_key is not None and self.secret_key is not None
        if self.security_token is not None and not pair:
            # Refused with or without an endpoint: the token belongs to a key pair.
            raise PydanticCustomError(
                REQUIRED_WITH,
                "a security token belongs to a temporary key: set vod.access_key and "
                "vod.secret_key with it",
                {"missing": ["security_token"]},
            )
        if self.endpoint is None:
            return self
        missing = [
            name
            for name in ("project_id", "access_key", "secret_key")
            if getattr(self, name) is None
        ]
        if missing:
            raise PydanticCustomError(
                REQUIRED_WITH, "required with vod.endpoint", {"missing": missing}
            )
        return self


class CoverSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # regenerate_head_frame: check for the new cover this long after asking (seconds,
    # through the retry tiers), this many times, then hand over to the next handler.
    regenerate_check_delay: Seconds = 120.0
    regenerate_attempts: Count = 2
    # fallback_cover: snapshot kinds in order of preference; offsets under
    # min_offset_seconds are skipped (first frames are often black).
    snapshot_preference: tuple[SnapshotKind, ...] = ("sample", "dots", "quantity")
    min_offset_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False), Number] = 1.0
    # With no snapshots and none coming: ask VOD for these offsets (seconds), retry after.
    snapshot_offsets: tuple[Annotated[int, Field(ge=0), Number], ...] = (1, 5, 10)
    snapshot_retry_after: Seconds = 60.0
    # A cover the fallback set takes VOD 3-5 minutes to show: check back this long after
    # (through the retry tiers), this many times; then set it once more, then give up.
    verify_delay: Seconds = 240.0
    verify_checks: Count = 2
