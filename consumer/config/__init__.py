"""The configuration: section models (``sections``, ``vod``, ``ingest``) and how a file,
secret files and the environment become one validated :class:`Settings` (``settings``)."""

from consumer.config.ingest import IngestSettings
from consumer.config.sections import (
    ConsumerSettings,
    DeadLetterSettings,
    HttpSettings,
    KafkaSettings,
    LogSettings,
    MatchSpec,
    RetrySettings,
    RouteSpec,
    TierSpec,
    TopicsSettings,
    TracingSettings,
)
from consumer.config.settings import (
    CONFIG_ENV,
    DEFAULT_SECRETS_DIR,
    SECRETS_DIR_ENV,
    Settings,
    load_settings,
    render_masked,
    secret_file,
    secret_values,
)
from consumer.config.vod import CoverSettings, VodSettings

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_SECRETS_DIR",
    "SECRETS_DIR_ENV",
    "ConsumerSettings",
    "CoverSettings",
    "DeadLetterSettings",
    "HttpSettings",
    "IngestSettings",
    "KafkaSettings",
    "LogSettings",
    "MatchSpec",
    "RetrySettings",
    "RouteSpec",
    "Settings",
    "TierSpec",
    "TopicsSettings",
    "TracingSettings",
    "VodSettings",
    "load_settings",
    "render_masked",
    "secret_file",
    "secret_values",
]
