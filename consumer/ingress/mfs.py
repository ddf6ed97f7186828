"""MFS callbacks (VOD's own notification service): the optional HMAC authentication.

With a key generated in the VOD console, VOD sends ``auth_timestamp`` and ``auth_sign =
lowercase hex(HMAC-SHA256(key, "VOD_" + auth_timestamp + "_" + message))`` where message
is the ``message`` attribute of the JSON body (Huawei's Java sample: a string). Inferences,
as INGRESS.md leaves them open: a body without ``message`` is signed whole; a ``message``
that is an object may be signed as its JSON written compactly or with spaces, or the whole
body may be (each tried: the key still has to match); ``auth_timestamp`` is epoch seconds
or milliseconds (13 digits), and is checked against a window both ways.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence

from consumer.ingress.refusal import Refused

__all__ = ["check", "signed_contents"]

_MS_FROM = 10**11  # an epoch in seconds reaches this in the year 5138
_STAMP = re.compile(r"^[0-9]{1,16}(\.[0-9]{1,6})?$")


def signed_contents(document: object, body: bytes) -> list[bytes]:
    """What ``auth_sign`` may cover in a callback whose parsed body is ``document``, the
    documented reading first."""
    message = document.get("message") if isinstance(document, dict) else None
    if isinstance(message, str):
        return [message.encode("utf-8"), body]
    if message is None:
        return [body]
    forms = [
        json.dumps(message, ensure_ascii=ascii, separators=separators).encode("utf-8")
        for separators in ((",", ":"), (", ", ": "))
        for ascii in (False, True)
    ]
    return [*dict.fromkeys(forms), body]


def check(
    headers: Mapping[str, str],
    contents: Sequence[bytes],
    key: bytes,
    window: float,
    now: float,
) -> None:
    """Raise :class:`Refused` (401 without or with a stale timestamp, 403 for a wrong
    signature) unless the callback carries a valid, fresh signature of one of
    ``contents``."""
    stamp = headers.get("auth_timestamp", "").strip()
    sign = headers.get("auth_sign", "").strip().lower()
    if not stamp or not sign:
        raise Refused(401, "auth", "auth_sign and auth_timestamp headers required")
    if not _STAMP.match(stamp):
        raise Refused(401, "auth", "auth_timestamp is not an epoch time")
    prefix = b"VOD_" + stamp.encode() + b"_"
    signs = (hmac.new(key, prefix + content, hashlib.sha256).hexdigest() for content in contents)
    if not any(hmac.compare_digest(expected, sign) for expected in signs):
        raise Refused(403, "signature", "auth_sign does not match the message")
    value = float(stamp)
    seconds = value / 1000 if value >= _MS_FROM else value
    if abs(now - seconds) > window:
        raise Refused(
            401, "timestamp", f"auth_timestamp is {now - seconds:+.0f} s off this host's clock"
        )
