"""Settings: one YAML file, overridden by secret files, then environment, then kwargs.

Every error leaves as :class:`ConfigError` naming dotted keys only, never values,
so it is safe to print even when the offending key holds a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from consumer.errors import ConfigError
from consumer.handlers.settings import CoverSettings
from consumer.vod.settings import VodSettings

CONFIG_ENV = "COVER_CONSUMER_CONFIG"
SECRETS_DIR_ENV = "COVER_CONSUMER_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/etc/cover-consumer/secrets"

# A custom error type lets the formatter point at the missing key itself rather
# than at the section whose validator noticed it.
_REQUIRED_WITH = "required_with"

_Millis = Annotated[int, Field(gt=0)]
_Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Count = Annotated[int, Field(ge=1)]
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
    session_timeout_ms: _Millis = 45_000
    heartbeat_interval_ms: _Millis = 3_000
    max_poll_interval_ms: _Millis = 300_000
    request_timeout_ms: _Millis = 30_000
    # Bytes one fetch may bring (all partitions / one partition): the read-ahead buffer.
    fetch_max_bytes: _Count = 16 * 2**20
    max_partition_fetch_bytes: _Count = 2**20

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
                _REQUIRED_WITH,
                "required when kafka.security_protocol is {protocol}",
                {"protocol": self.security_protocol, "missing": missing},
            )
        return self


class ConsumerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Records fetched and not yet finished, across all partitions.
    max_in_flight: _Count = 256
    # Fetched but not yet committable in one partition: bounds the uncommitted
    # window, and with it the duplicates replayed after a crash.
    max_pending_per_partition: _Count = 1000
    commit_interval: _Seconds = 1.0
    shutdown_timeout: _Seconds = 25.0
    revoke_timeout: _Seconds = 10.0
    poll_timeout: _Seconds = 0.5
    fetch_max_records: _Count = 500
    # A handler call running longer is cancelled and counts as a transient failure.
    handler_timeout: _Seconds = 120.0


class TierSpec(BaseModel):
    """A delayed-retry tier: a topic whose records are due a fixed delay after they were written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay: _Seconds
    # Default: <kafka.topic>.retry.<delay>, e.g. vod-cover-events.retry.10m
    topic: _NonEmpty | None = None


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # In-process attempts of one handler (the first call included), with exponential
    # backoff and full jitter, holding only that asset's queue.
    quick_attempts: _Count = 3
    quick_base_delay: _Seconds = 0.2
    quick_max_delay: _Seconds = 5.0
    # Total time one handler may spend in quick retries before going to a tier.
    quick_budget: _Seconds = 15.0
    # Calls of a handler raising unexpected exceptions before the event is dead-lettered.
    unexpected_attempts: _Count = 3
    # Each delayed retry goes to a later tier; after the last, the next handler or the DLQ.
    tiers: list[TierSpec] = Field(
        default_factory=lambda: [TierSpec(delay=60), TierSpec(delay=600), TierSpec(delay=3600)]
    )


class DeadLetterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Default: <kafka.topic>.dlq
    topic: _NonEmpty | None = None
    # Stop consuming when more than `guard_threshold` of the last `guard_window` final
    # outcomes were dead letters (once at least `guard_min_records` were seen).
    guard_window: _Count = 200
    guard_threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    guard_min_records: _Count = 50


class TopicsSettings(BaseModel):
    """What `cover-consumer topics ensure` creates when a topic is missing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partitions: _Count = 6
    replication_factor: _Count = 3


class HttpSettings(BaseModel):
    """The side server: /livez, /readyz, /metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # All interfaces: probes and scrapes come from outside the pod.
    host: _NonEmpty = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    # /livez fails when the consume loop made no progress for this long.
    liveness_timeout: _Seconds = 60.0


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["json", "console"] = "json"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


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


# The YAML has to reach ``settings_customise_sources``, a classmethod called from
# inside ``Settings.__init__``; a ContextVar keeps concurrent loads apart.
_file_data: ContextVar[Mapping[str, Any] | None] = ContextVar("_file_data", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="COVER_CONSUMER__",
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    dead_letter: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
    topics: TopicsSettings = Field(default_factory=TopicsSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    vod: VodSettings = Field(default_factory=VodSettings)
    covers: CoverSettings = Field(default_factory=CoverSettings)
    # None means the built-in default routes, which live with the router.
    routes: list[RouteSpec] | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets = NestedSecretsSettingsSource(
            file_secret_settings,
            secrets_dir=os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR,
            secrets_dir_missing="ok",
            # File names are ``kafka__sasl_password``, not prefixed like env vars.
            secrets_prefix="",
            secrets_nested_delimiter="__",
        )
        file = InitSettingsSource(settings_cls, init_kwargs=dict(_file_data.get() or {}))
        return init_settings, env_settings, secrets, file


def load_settings(path: str | Path | None = None) -> Settings:
    """Build the settings from ``path`` (or ``$COVER_CONSUMER_CONFIG``, or no file)."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    data = _read_yaml(Path(path)) if path is not None else {}
    token = _file_data.set(data)
    try:
        return Settings()
    except ValidationError as exc:
        where = f"file: {path}" if path is not None else "no config file"
        lines = "\n".join(_format_errors(exc))
        raise ConfigError(f"invalid configuration ({where}):\n{lines}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    finally:
        _file_data.reset(token)


def render_masked(settings: Settings) -> str:
    """The effective settings as YAML, shaped like the file, secrets masked."""
    # JSON mode renders SecretStr as "**********" and Path as str.
    data = settings.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def secret_values(settings: BaseModel) -> list[str]:
    """Every non-empty secret anywhere in ``settings``, longest first.

    Longest first, so a scrubber replacing in order never leaves a secret's tail behind.
    """
    found = {value for value in _walk_secrets(settings) if value}
    return sorted(found, key=lambda v: (-len(v), v))


def _walk_secrets(value: object) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk_secrets(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _walk_secrets(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _walk_secrets(item)


def _plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file is not UTF-8: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {path}: {_describe_yaml_error(exc)}") from None
    if data is None:  # an empty file means "all defaults"
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, not {type(data).__name__}")
    return data


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    # Parser attributes, not str(exc): that quotes the source line, maybe a secret.
    if not isinstance(exc, yaml.MarkedYAMLError):
        return "malformed YAML"
    # PyYAML quotes the offending token in ``problem`` (an alias, a tag): blank it out.
    text = re.sub(r"'[^']*'", "'...'", exc.problem or "malformed YAML")
    if exc.problem_mark is not None:
        mark = exc.problem_mark
        text = f"line {mark.line + 1}, column {mark.column + 1}: {text}"
    if exc.context and exc.context_mark is not None:
        text += f" ({exc.context}, from line {exc.context_mark.line + 1})"
    return text


def _format_errors(exc: ValidationError) -> list[str]:
    # include_input=False: pydantic's own rendering echoes the offending value.
    lines: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key")
        elif err["type"] == _REQUIRED_WITH:
            prefix = f"{loc}." if loc else ""
            lines.extend(f"{prefix}{name}: {err['msg']}" for name in err["ctx"]["missing"])
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc}: {msg}" if loc else msg)
    return lines
