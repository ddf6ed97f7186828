"""Where the VOD client's key comes from, and how a rotated one reaches it without a restart.

VOD takes AK/SK signatures; a temporary key (IAM's or an agency's, valid 15 minutes to
24 hours) adds a security token. A temporary key expires under a running daemon, and a
permanent one may be rotated: either way VOD then answers 401. Given by secret files (a
Kubernetes Secret volume, which the kubelet updates in place when the Secret changes), the
key is read again on that 401, and the call is sent once more only when the key did change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol

from pydantic import SecretStr
from structlog.typing import FilteringBoundLogger

from consumer.logs import add_secret
from consumer.vod.signing import Credentials

__all__ = ["CredentialField", "CredentialSource", "SecretFileCredentials", "StaticCredentials"]

CredentialField = Literal["access_key", "secret_key", "security_token"]
_PARTS: tuple[CredentialField, ...] = ("access_key", "secret_key", "security_token")


class CredentialSource(Protocol):
    def current(self) -> Credentials:
        """The key to sign the next request with."""
        ...

    def reload(self) -> Credentials:
        """Read the key again after VOD refused it; the current one when unchanged."""
        ...


class StaticCredentials:
    """A key given once (environment, YAML, a test): nothing to read again."""

    __slots__ = ("_credentials",)

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def current(self) -> Credentials:
        return self._credentials

    def reload(self) -> Credentials:
        return self._credentials


class SecretFileCredentials:
    """A key whose parts (some or all) came from secret files, read again on ``reload``.

    ``files`` maps each part given by a file at start to that file; the other parts keep
    their start values (the environment wins over a file, now as at start). A security
    token whose file is gone means a permanent key now. While the access key or the secret
    key cannot be read (a Secret being rewritten), the current key stays.
    """

    __slots__ = ("_current", "_files", "_log")

    def __init__(
        self,
        initial: Credentials,
        files: Mapping[CredentialField, Path],
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self._current = initial
        self._files = dict(files)
        self._log = log

    def current(self) -> Credentials:
        return self._current

    def reload(self) -> Credentials:
        # Blocking reads of three small files, and only after a 401: not worth a thread.
        read = {name: _read(path) for name, path in self._files.items()}
        if any(name in read and read[name] is None for name in ("access_key", "secret_key")):
            if self._log is not None:
                self._log.warning("vod_credentials_unreadable", files=sorted(self._files))
            return self._current
        for value in read.values():
            if value is not None:
                add_secret(value)  # scrubbed from every line before it can appear in one
        was = self._current
        token = was.security_token
        if "security_token" in read:  # its file gone or empty: a permanent key now
            token = SecretStr(value) if (value := read["security_token"]) else None
        fresh = Credentials(
            read.get("access_key") or was.access_key,
            SecretStr(secret) if (secret := read.get("secret_key")) else was.secret_key,
            token,
        )
        if fresh != was:
            self._current = fresh
            if self._log is not None:
                changed = [part for part in _PARTS if getattr(fresh, part) != getattr(was, part)]
                self._log.warning("vod_credentials_reloaded", changed=changed)
        return self._current


def _read(path: Path) -> str | None:
    """The file's value as the settings read it (stripped); None if missing or empty."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None
