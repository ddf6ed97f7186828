"""The project's exceptions: one small tree, so callers catch by meaning.

ConsumerError
├── ConfigError          the configuration cannot be used (exit code 2)
│   └── HandlerNotFound  a route names a handler that cannot be resolved
├── TransientError       worth retrying (clients raise it, or set ``retryable = True``)
└── RecordError          one record cannot be processed; never stops the consumer
    ├── InvalidRecord    not JSON, or not a valid event: dead-lettered with the reason
    └── IgnoredRecord    valid but carries nothing to handle: outcome ``skipped``
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """How ``cover-consumer`` ends (also in the README)."""

    OK = 0  # clean shutdown
    FATAL = 1  # fatal error at run time (logged as ``fatal_error``)
    CONFIG = 2  # invalid configuration or usage
    FORCED = 130  # a second SIGTERM/SIGINT forced an immediate exit


class ConsumerError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(ConsumerError):
    """The configuration is missing, malformed or invalid.

    Messages name the dotted path of the offending key and never carry a value,
    so they are safe to print even when the key holds a secret.
    """


class HandlerNotFound(ConfigError):
    """A handler name resolves to nothing callable."""


class TransientError(ConsumerError):
    """A failure that may pass: the handler is called again (quick retries, then tiers).

    Any exception with a true ``retryable`` attribute is treated the same, so a client
    library need not depend on this package to mark its errors.
    """

    retryable = True


class RecordError(ConsumerError):
    """A record that cannot become an event; ``reason`` goes to the outcome line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidRecord(RecordError):
    """Not JSON, or JSON that does not validate as an event."""


class IgnoredRecord(RecordError):
    """A well-formed record with no event in it (e.g. an SMN subscription confirmation)."""
