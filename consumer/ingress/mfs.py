"""MFS callbacks (VOD's own notification service): the optional HMAC authentication.

With a key generated in the VOD console, VOD sends ``auth_timestamp`` and ``auth_sign =
lowercase hex(HMAC-SHA256(key, "VOD_" + auth_timestamp + "_" + message))`` where message
is the ``message`` attribute of the JSON body (Huawei's Java sample: a string). Inferences,
as INGRESS.md leaves them open: a body without ``message`` is signed whole; a ``message``
that is an object is signed as its compact JSON; ``auth_timestamp`` is epoch seconds or
milliseconds (13 digits), and is checked against a window both ways.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from consumer.ingress.refusal import Refused

__all__ = ["check", "signed_content"]

_MS_FROM = 10**11  # an epoch in seconds reaches this in the year 5138


def signed_content(document: object, body: bytes) -> bytes:
    """What ``auth_sign`` covers in a callback whose parsed body is ``document``."""
    message = document.get("message") if isinstance(document, dict) else None
    if isinstance(message, str):
        return message.encode("utf-8")
    if message is None:
        return body
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check(
    headers: Mapping[str, str], content: bytes, key: bytes, window: float, now: float
) -> None:
    """Raise :class:`Refused` (401 without or with a stale timestamp, 403 for a wrong
    signature) unless the callback carries a valid, fresh signature of ``content``."""
    stamp = headers.get("auth_timestamp", "").strip()
    sign = headers.get("auth_sign", "").strip().lower()
    if not stamp or not sign:
        raise Refused(401, "auth", "auth_sign and auth_timestamp headers required")
    if not stamp.isdigit() or len(stamp) > 16:
        raise Refused(401, "auth", "auth_timestamp is not an epoch time")
    expected = hmac.new(key, b"VOD_" + stamp.encode() + b"_" + content, hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), sign):
        raise Refused(403, "signature", "auth_sign does not match the message")
    value = int(stamp)
    seconds = value / 1000 if value >= _MS_FROM else float(value)
    if abs(now - seconds) > window:
        raise Refused(
            401, "timestamp", f"auth_timestamp is {now - seconds:+.0f} s off this host's clock"
        )
