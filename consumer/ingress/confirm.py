"""Confirming an SMN subscription: a GET on the ``subscribe_url`` of a verified
SubscriptionConfirmation, exactly as received (its token is in the query), and only to an
allowed host: anything else would let whoever can get a message signed make this process
fetch any URL (SSRF). https only, but for loopback hosts (local tests); no redirects; the
answer's body is not read. ``unsubscribe_url`` is never called and never logged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp

from consumer.ingress.refusal import Refused

__all__ = ["Confirmer", "host_allowed", "where"]

CONFIRM_TIMEOUT = 4.0  # under SMN's 5 s answer budget


def host_allowed(host: str, port: int | None, patterns: Sequence[str]) -> bool:
    """Whether ``host`` (lower case) matches one of ``patterns``: a host name, optionally
    with ``:port``; ``*`` stands for one label, ``*-`` for a prefix without dots."""
    for pattern in patterns:
        name, _, wanted_port = pattern.partition(":")
        if wanted_port and str(port) != wanted_port:
            continue
        if name.startswith("*-"):
            prefix = host[: -len(name) + 1] if host.endswith(name[1:]) else ""
            if prefix and "." not in prefix:
                return True
        elif name.startswith("*."):
            label = host[: -len(name) + 1] if host.endswith(name[1:]) else ""
            if label and "." not in label:
                return True
        elif host == name:
            return True
    return False


def where(url: str) -> str:
    """The URL without its query and fragment (the token): what a log line may show."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Confirmer:
    def __init__(self, http: aiohttp.ClientSession, patterns: Sequence[str]) -> None:
        self._http = http
        self._patterns = tuple(patterns)

    def check(self, url: str) -> None:
        """Raise :class:`Refused` (403) unless ``url`` may be fetched."""
        try:
            parts = urlsplit(url)
            # A URL without a port goes to its scheme's: "host:443" allows it too.
            default = 443 if parts.scheme == "https" else 80
            host, port = (parts.hostname or "").lower(), parts.port or default
        except ValueError:
            raise Refused(400, "malformed", "subscribe_url is not a URL") from None
        if parts.username or parts.password:
            raise Refused(403, "confirm_host", "subscribe_url carries credentials")
        if not host_allowed(host, port, self._patterns):
            raise Refused(
                403, "confirm_host", f"subscribe_url host {host[:80]!r} is not in confirm_hosts"
            )
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(host)):
            raise Refused(403, "confirm_host", "subscribe_url is not https")

    async def confirm(self, url: str) -> int:
        """GET ``url`` (checked first); return the status. 5xx or no answer: Refused 502,
        so SMN sends the confirmation again; a redirect or 4xx: Refused 403."""
        self.check(url)
        timeout = aiohttp.ClientTimeout(total=CONFIRM_TIMEOUT)
        try:
            async with self._http.get(url, allow_redirects=False, timeout=timeout) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Refused(
                502, "confirm_failed", f"subscribe_url did not answer ({type(exc).__name__})"
            ) from None
        if status >= 500:
            raise Refused(502, "confirm_failed", f"subscribe_url answered {status}")
        if status >= 300:
            raise Refused(403, "confirm_failed", f"subscribe_url answered {status}")
        return status
