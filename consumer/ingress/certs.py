"""Which keys may sign SMN messages: pinned certificates first (Huawei's published one,
shipped with the package, and any configured), then, when enabled, the certificate at a
message's ``signing_cert_url``, fetched only from the documented host pattern.

Fetching follows Huawei's own warning (man in the middle) and INGRESS.md's policy: https
only, the exact URL shape, no redirects, at most 64 KiB, within its validity dates, RSA,
one fetch per URL at a time, kept for a day (a failure for five minutes, so a flood of
forged messages naming a URL costs one fetch, not one per message).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.typing import FilteringBoundLogger

from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.errors import ConfigError
from consumer.ingress.smn import SmnMessage, verify

__all__ = ["CERT_URL", "CertFetcher", "Pinned", "TrustStore", "load_pinned", "shipped_pem"]

CERT_URL = re.compile(
    r"^https://smn\.[a-z0-9-]+\.myhuaweicloud\.com/smn/SMN_[a-z0-9-]+_[0-9a-f]{32}\.pem$"
)
SHIPPED = "huawei_smn_signing_cert.pem"
MAX_CERT_BYTES = 64 * 1024
FETCH_TIMEOUT = 3.0
KEEP_FETCHED = 24 * 3600.0
KEEP_FAILURE = 300.0
# Certificates (and refusals) remembered at most: the URL pattern leaves a region and 32
# hex digits free, and a sender could otherwise grow the cache by one per request.
MAX_CACHED = 64


@dataclass(frozen=True, slots=True)
class Pinned:
    name: str  # where it came from, for log lines
    key: rsa.RSAPublicKey
    not_after: datetime


def shipped_pem() -> bytes:
    """Huawei's published SMN signing certificate (CN=Huawei-Cloud-SMN-Meter, to 2030-09-07)."""
    return resources.files("consumer.ingress").joinpath(SHIPPED).read_bytes()


def load_pinned(paths: Sequence[Path]) -> list[Pinned]:
    """The shipped certificate, then each configured one; a file that is not an RSA
    certificate in PEM is a :class:`ConfigError` naming its key."""
    pinned = [_pinned(shipped_pem(), f"shipped {SHIPPED}")]
    for index, path in enumerate(paths):
        where = f"ingest.smn.certificates.{index}"
        try:
            pinned.append(_pinned(path.read_bytes(), str(path)))
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the file ({exc.strerror})") from None
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return pinned


class _Unusable(ValueError):
    """A certificate that cannot verify SMN messages; the message says why."""


def _pinned(pem: bytes, name: str) -> Pinned:
    key, cert = _rsa_certificate(pem)
    return Pinned(name, key, cert.not_valid_after_utc)


def _rsa_certificate(
    pem: bytes, now: datetime | None = None
) -> tuple[rsa.RSAPublicKey, x509.Certificate]:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise _Unusable("not a PEM certificate") from None
    if now is not None and not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise _Unusable("outside its validity dates")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _Unusable("not an RSA certificate (SMN signs with RSA)")
    return key, cert


class CertFetcher:
    """``signing_cert_url`` -> its RSA key, under the policy above; None when refused."""

    def __init__(
        self, http: aiohttp.ClientSession, log: FilteringBoundLogger, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._http = http
        self._log = log
        self._clock = clock
        self._cache: dict[str, tuple[float, rsa.RSAPublicKey | None]] = {}
        self._running: dict[str, asyncio.Task[rsa.RSAPublicKey | None]] = {}

    async def key_for(self, url: str) -> rsa.RSAPublicKey | None:
        if not CERT_URL.match(url):
            return None
        cached = self._cache.get(url)
        if cached is not None and cached[0] > self._clock.monotonic():
            return cached[1]
        task = self._running.get(url)
        if task is None:
            task = asyncio.create_task(self._fetch(url))
            self._running[url] = task
            task.add_done_callback(lambda _: self._running.pop(url, None))
        return await asyncio.shield(task)

    async def _fetch(self, url: str) -> rsa.RSAPublicKey | None:
        key: rsa.RSAPublicKey | None = None
        keep = KEEP_FAILURE
        try:
            pem = await self._download(url)
            now = datetime.fromtimestamp(self._clock.wall(), UTC)
            key, cert = _rsa_certificate(pem, now)
            keep = min(KEEP_FETCHED, (cert.not_valid_after_utc - now).total_seconds())
            self._log.info(
                "smn_certificate_fetched", url=url, not_after=str(cert.not_valid_after_utc)
            )
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._log.warning(
                "smn_certificate_refused", url=url, reason=str(exc) or type(exc).__name__
            )
        if url not in self._cache and len(self._cache) >= MAX_CACHED:
            del self._cache[next(iter(self._cache))]  # the oldest
        self._cache[url] = (self._clock.monotonic() + keep, key)
        return key

    async def _download(self, url: str) -> bytes:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with self._http.get(url, allow_redirects=False, timeout=timeout) as response:
            if response.status != 200:
                raise _Unusable(f"answered {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(8192):
                body += chunk
                if len(body) > MAX_CERT_BYTES:
                    raise _Unusable(f"larger than {MAX_CERT_BYTES} bytes")
            return bytes(body)


class TrustStore:
    """Verifies a message against the pinned keys, then (if enabled) its fetched certificate."""

    def __init__(self, pinned: Sequence[Pinned], fetcher: CertFetcher | None = None) -> None:
        self.pinned = list(pinned)
        self._keys = [p.key for p in pinned]
        self._fetcher = fetcher

    async def verify(self, message: SmnMessage) -> bool:
        if verify(message, self._keys):
            return True
        if self._fetcher is None:
            return False
        key = await self._fetcher.key_for(message.signing_cert_url)
        return key is not None and verify(message, (key,))
