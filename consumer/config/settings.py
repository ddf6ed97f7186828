"""The configuration: one YAML file, overridden by secret files, then environment, then kwargs.

Every error leaves as :class:`ConfigError` naming dotted keys only, never values,
so it is safe to print even when the offending key holds a secret.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from consumer.config.files import (
    ENV_PREFIX,
    check_environment,
    check_secret_files,
    read_secret_files,
    read_yaml,
)
from consumer.config.ingest import IngestSettings
from consumer.config.sections import (
    REQUIRED_WITH,
    ConsumerSettings,
    DeadLetterSettings,
    HttpSettings,
    KafkaSettings,
    LogSettings,
    RetrySettings,
    RouteSpec,
    TopicsSettings,
    TracingSettings,
    dead_letter_topic,
    tier_topic,
    valid_topic,
)
from consumer.config.vod import CoverSettings, VodSettings
from consumer.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_SECRETS_DIR",
    "SECRETS_DIR_ENV",
    "Settings",
    "load_settings",
    "render_masked",
    "secret_file",
    "secret_values",
]

CONFIG_ENV = "COVER_CONSUMER_CONFIG"
SECRETS_DIR_ENV = "COVER_CONSUMER_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/etc/cover-consumer/secrets"
# The program's variables that are not settings (the simulator's key is the dev command's).
_OWN_ENV = (CONFIG_ENV, SECRETS_DIR_ENV, "COVER_CONSUMER_SIM_SECRET_KEY")


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
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    # None means the built-in default routes, which live with the router.
    routes: list[RouteSpec] | None = None

    @field_validator("routes")
    @classmethod
    def _some_route(cls, routes: list[RouteSpec] | None) -> list[RouteSpec] | None:
        if routes is not None and not routes:
            raise ValueError(
                "no route: every event would be skipped (leave routes out for the defaults)"
            )
        return routes

    @model_validator(mode="after")
    def _topics_apart(self) -> Settings:
        # A side topic equal to the main topic feeds its records back in: one poison
        # record then loops (49 outcome lines in 20 s) until the guard trips.
        main = self.kafka.topic
        names = {
            "kafka.topic": main,
            "dead_letter.topic": dead_letter_topic(main, self.dead_letter),
            **{
                f"retry.tiers.{i}.topic": tier_topic(main, t)
                for i, t in enumerate(self.retry.tiers)
            },
        }
        names["dead_letter.topic (its replays topic)"] = f"{names['dead_letter.topic']}.replays"
        seen: dict[str, str] = {}
        for key, topic in names.items():
            if not valid_topic(topic):
                raise ValueError(
                    f"{key}: not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -, with the "
                    "suffix the daemon adds)"
                )
            if topic in seen:
                raise ValueError(f"{key} is the same topic as {seen[topic]}")
            seen[topic] = key
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets = _SecretFiles(
            file_secret_settings,
            secrets_dir=_secrets_dir(),
            secrets_dir_missing="ok",
            # File names are ``kafka__sasl_password``, not prefixed like env vars.
            secrets_prefix="",
            secrets_nested_delimiter="__",
        )
        file = InitSettingsSource(settings_cls, init_kwargs=dict(_file_data.get() or {}))
        return init_settings, env_settings, secrets, file


class _SecretFiles(NestedSecretsSettingsSource):
    """The secret files, a binary one refused when it names a setting, else skipped."""

    @classmethod
    def load_secrets(cls, path: Path) -> dict[str, str]:
        return read_secret_files(path, cls._iter_secret_files(path), Settings)


def load_settings(path: str | Path | None = None) -> Settings:
    """Build the settings from ``path`` (or ``$COVER_CONSUMER_CONFIG``, or no file)."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    data = read_yaml(Path(path)) if path is not None else {}
    check_environment(os.environ, Settings, own=_OWN_ENV)
    check_secret_files(Path(_secrets_dir()), Settings)
    token = _file_data.set(data)
    try:
        return Settings()
    except ValidationError as exc:
        where = f"file: {path}" if path is not None else "no config file"
        lines = "\n".join(_format_errors(exc, _Sources(data, Path(_secrets_dir()))))
        raise ConfigError(f"invalid configuration ({where}):\n{lines}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    finally:
        _file_data.reset(token)


def _secrets_dir() -> str:
    return os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR


def secret_file(key: str) -> Path | None:
    """The secret file that gives the setting ``key`` (dotted, e.g. ``vod.secret_key``)
    now, for reading it again later: None when there is none, or when the environment
    sets the key (the environment wins over secret files, at start as later)."""
    env = (ENV_PREFIX + key.replace(".", "__")).upper()
    if any(name.upper() == env for name in os.environ):
        return None
    path = Path(_secrets_dir()) / key.replace(".", "__")
    return path if path.is_file() else None


def render_masked(settings: Settings, routes: Sequence[RouteSpec] | None = None) -> str:
    """The effective settings as YAML, shaped like the file, secrets masked; ``routes``
    are the routes in force when the file names none (the defaults)."""
    # JSON mode renders SecretStr as "**********" and Path as str.
    data = settings.model_dump(mode="json")
    if data.get("routes") is None and routes is not None:
        data["routes"] = [route.model_dump(mode="json", exclude_none=True) for route in routes]
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


class _Sources:
    """Which source set a key, for the error that names it: the environment beats a
    secret file, which beats the file (the precedence of the sources)."""

    def __init__(self, data: Mapping[str, Any], secrets: Path) -> None:
        self._data = data
        self._secrets = secrets
        self._env = {name.upper() for name in os.environ}

    def of(self, loc: Sequence[str | int]) -> str:
        keys = [str(part) for part in loc if isinstance(part, str)]
        for depth in range(len(keys), 0, -1):
            name = "__".join(keys[:depth])
            if f"{ENV_PREFIX}{name}".upper() in self._env:
                return f"environment variable {ENV_PREFIX}{name.upper()}"
            if (self._secrets / name).is_file():
                return f"secret file {self._secrets / name}"
        return "the file" if self._in_file(loc) else "the defaults"

    def _in_file(self, loc: Sequence[str | int]) -> bool:
        node: Any = self._data
        for part in loc:
            in_mapping = isinstance(node, Mapping) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if not (in_mapping or in_list):
                return False
            node = node[part]
        return True


def _format_errors(exc: ValidationError, sources: _Sources) -> list[str]:
    # include_input=False: pydantic's own rendering echoes the offending value.
    lines: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        source = f" (from {sources.of(err['loc'])})" if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key{source}")
        elif err["type"] == REQUIRED_WITH:
            prefix = f"{loc}." if loc else ""
            lines.extend(f"{prefix}{name}: {err['msg']}" for name in err["ctx"]["missing"])
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc}: {msg}{source}" if loc else msg)
    return lines
