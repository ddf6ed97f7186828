"""SMN's HTTP(S) push: the envelope's fields and their signature (INGRESS.md).

signature_version "v1": RSA PKCS#1 v1.5 with SHA-256 over, for each signed field in
alphabetical order, ``key + "\\n" + value + "\\n"`` (a final newline included), values as
JSON-decoded; Notification signs ``message, message_id, subject, timestamp, topic_urn,
type`` (``subject`` left out when absent or empty), the confirmations sign ``subscribe_url``
in place of ``subject``. Pure functions over parsed JSON: no I/O here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from consumer.ingress.refusal import Refused

__all__ = ["SIGNED_FIELDS", "UNVERIFIABLE", "SmnMessage", "parse", "verify"]

_CONFIRMATION = ("message", "message_id", "subscribe_url", "timestamp", "topic_urn", "type")
SIGNED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Notification": ("message", "message_id", "subject", "timestamp", "topic_urn", "type"),
    "SubscriptionConfirmation": _CONFIRMATION,
    "UnsubscribeConfirmation": _CONFIRMATION,
}
#: Types in current Chinese docs whose fields are not documented: acknowledged and logged,
#: never verified (nothing to verify against) and never forwarded.
UNVERIFIABLE = frozenset({"HttpSubscriptionUserConfirm", "HttpSubscriptionUserUnsubscribe"})
_OPTIONAL = frozenset({"subject"})
# Read as text too; values that are not signed need not be, but these are used.
_STRINGS = ("signature", "signature_version", "signing_cert_url", "unsubscribe_url")
_MAX_TYPE_SHOWN = 40


@dataclass(frozen=True, slots=True)
class SmnMessage:
    """A parsed SMN envelope: every field it holds, as text."""

    fields: Mapping[str, str]

    @property
    def type(self) -> str:
        return self.fields["type"]

    @property
    def message_id(self) -> str:
        return self.fields.get("message_id", "")

    @property
    def topic_urn(self) -> str:
        return self.fields.get("topic_urn", "")

    @property
    def signing_cert_url(self) -> str:
        return self.fields.get("signing_cert_url", "")

    @property
    def subscribe_url(self) -> str:
        return self.fields.get("subscribe_url", "")

    @property
    def verifiable(self) -> bool:
        return self.type in SIGNED_FIELDS

    def string_to_sign(self) -> bytes:
        parts = []
        for name in SIGNED_FIELDS[self.type]:
            value = self.fields.get(name)
            if name in _OPTIONAL and not value:
                continue
            parts.append(f"{name}\n{value}\n")
        return "".join(parts).encode("utf-8")


def parse(document: object, header_type: str | None) -> SmnMessage:
    """The envelope, checked for shape: a JSON object of strings, a known ``type`` equal
    to the ``X-SMN-MESSAGE-TYPE`` header (when sent), every signed field present, and
    signature version v1. Raises :class:`Refused` (400, or 403 for the version)."""
    if not isinstance(document, dict):
        raise Refused(400, "malformed", "body is not a JSON object")
    kind = document.get("type")
    if not isinstance(kind, str) or not kind:
        raise Refused(400, "malformed", "type: missing or not a string")
    if kind not in SIGNED_FIELDS and kind not in UNVERIFIABLE:
        raise Refused(400, "type", f"unknown SMN message type {kind[:_MAX_TYPE_SHOWN]!r}")
    if header_type is not None and header_type.strip() != kind:
        raise Refused(
            400,
            "type",
            f"type {kind!r} differs from the X-SMN-MESSAGE-TYPE header "
            f"{header_type.strip()[:_MAX_TYPE_SHOWN]!r}",
        )
    if kind in UNVERIFIABLE:
        return SmnMessage({"type": kind, **_texts(document, ("message_id", "topic_urn"))})
    wanted = (*SIGNED_FIELDS[kind], *_STRINGS)
    fields = _texts(document, wanted)
    missing = [
        name
        for name in (*SIGNED_FIELDS[kind], "signature", "signature_version")
        if name not in fields and name not in _OPTIONAL
    ]
    # Empty ones too: an empty message_id would make every such message one duplicate.
    missing += [n for n in ("message_id", "topic_urn", "signature") if fields.get(n) == ""]
    if missing:
        raise Refused(400, "malformed", f"{kind} without {', '.join(missing)}")
    if fields["signature_version"].lower() != "v1":
        raise Refused(
            403,
            "signature",
            f"signature_version {fields['signature_version'][:_MAX_TYPE_SHOWN]!r} is not v1",
        )
    return SmnMessage(fields)


def _texts(document: Mapping[str, object], names: Iterable[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name in names:
        value = document.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Refused(400, "malformed", f"{name}: not a string (SMN sends only strings)")
        fields[name] = value
    return fields


def verify(message: SmnMessage, keys: Iterable[rsa.RSAPublicKey]) -> bool:
    """Whether one of ``keys`` made the message's signature."""
    try:
        signature = base64.b64decode(message.fields["signature"], validate=True)
    except (binascii.Error, ValueError):
        return False
    data = message.string_to_sign()
    for key in keys:
        try:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return True
    return False
