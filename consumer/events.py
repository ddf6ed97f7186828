"""VOD events as typed values, and the one function that turns record bytes into them.

A record holds either the bare VOD event JSON or the SMN envelope around it (the
event as a JSON string in ``message``); both decode to the same event. Models
accept fields they do not know, because VOD adds fields over time, and event
types they do not know decode to :class:`OtherEvent`, which no default route
matches.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from consumer.errors import IgnoredRecord, InvalidRecord

__all__ = [
    "COVER_TYPES",
    "EVENT_TYPES",
    "STATUSES",
    "CoverComplete",
    "CoverInfo",
    "Event",
    "OtherEvent",
    "Snapshot",
    "ThumbnailComplete",
    "ThumbnailInfo",
    "decode",
]

# Canonical spellings by lowercase name: the console writes "CoverComplete", bodies "coverComplete".
_CANONICAL_TYPES = {
    name.lower(): name
    for name in (
        "coverComplete",
        "thumbnailComplete",
        "transcodeComplete",
        "reviewComplete",
        "createComplete",
        "audioExtractComplete",
        "cutComplete",
        "concatComplete",
    )
}
_MAX_REASON = 300
#: What a route may match on (compared case-insensitively).
EVENT_TYPES = tuple(_CANONICAL_TYPES.values())
STATUSES = ("SUCCEED", "FAILED")
COVER_TYPES = ("HEAD_FRAME_COVER",)


def _canonical_type(value: object) -> object:
    return _CANONICAL_TYPES.get(value.lower(), value) if isinstance(value, str) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Snapshot(_Model):
    """One snapshot image of an asset: its offset in seconds and its URL."""

    offset: float = 0
    url: str


def _absent_if_null(value: object) -> object:
    # VOD's own example sends the string "null" where it means no message.
    if isinstance(value, str) and value.strip().lower() in ("", "null", "none"):
        return None
    return value


# Native (Rust-side) constraints and tuple defaults: decoding runs once per record, and
# Python validators or mutable defaults (deep-copied per instance) cost more than the parse.
_AssetId = Annotated[str, StringConstraints(min_length=1)]
_Upper = Annotated[str, StringConstraints(to_upper=True)]
# VOD (and the official SDK) may write null for an empty list: read it as one.
_Snapshots = Annotated[tuple[Snapshot, ...], BeforeValidator(lambda v: () if v is None else v)]


class CoverInfo(_Model):
    asset_id: _AssetId
    status: _Upper
    cover_type: _Upper | None = None
    title: str | None = None
    error_code: str | None = None
    error_msg: str | None = None
    cover_urls: _Snapshots = ()

    _nullish = field_validator("error_code", "error_msg", mode="before")(_absent_if_null)


class ThumbnailInfo(_Model):
    asset_id: _AssetId
    status: _Upper
    sample: _Snapshots = ()
    dots: _Snapshots = ()
    quantity: _Snapshots = ()
    error_code: str | None = None
    error_msg: str | None = None

    _nullish = field_validator("error_code", "error_msg", mode="before")(_absent_if_null)


class CoverComplete(_Model):
    """First-frame cover generated (``SUCCEED``) or not (``FAILED``)."""

    event_type: Literal["coverComplete"] = "coverComplete"
    cover_info: CoverInfo

    _canonical = field_validator("event_type", mode="before")(_canonical_type)

    @property
    def asset_id(self) -> str:
        return self.cover_info.asset_id

    @property
    def status(self) -> str:
        return self.cover_info.status

    @property
    def cover_type(self) -> str | None:
        return self.cover_info.cover_type


class ThumbnailComplete(_Model):
    """Snapshots of an asset are ready (``SUCCEED``) or failed."""

    event_type: Literal["thumbnailComplete"] = "thumbnailComplete"
    thumbnail_info: ThumbnailInfo

    _canonical = field_validator("event_type", mode="before")(_canonical_type)

    @property
    def asset_id(self) -> str:
        return self.thumbnail_info.asset_id

    @property
    def status(self) -> str:
        return self.thumbnail_info.status

    @property
    def cover_type(self) -> None:
        return None


class OtherEvent(_Model):
    """Any other VOD event type: kept whole so a user's own route may still handle it."""

    event_type: str

    _canonical = field_validator("event_type", mode="before")(_canonical_type)

    @property
    def asset_id(self) -> str | None:
        # Every VOD body nests its asset id one level down (``<kind>_info.asset_id``).
        for value in (self.model_extra or {}).values():
            if isinstance(value, dict) and isinstance(value.get("asset_id"), str):
                return str(value["asset_id"])
        return None

    @property
    def status(self) -> str | None:
        for value in (self.model_extra or {}).values():
            if isinstance(value, dict) and isinstance(value.get("status"), str):
                return str(value["status"]).upper()
        return None

    @property
    def cover_type(self) -> None:
        return None


class _SmnEnvelope(_Model):
    type: str
    message: str | None = None


Event = CoverComplete | ThumbnailComplete | OtherEvent


def _event_tag(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    if "event_type" not in raw and "type" in raw and ("message" in raw or "topic_urn" in raw):
        return "smn"
    kind = raw.get("event_type")
    if not isinstance(kind, str):
        return "other"  # lets validation report the missing/mistyped field by name
    canonical = _canonical_type(kind)
    return canonical if canonical in ("coverComplete", "thumbnailComplete") else "other"


_Decodable = Annotated[
    Annotated[CoverComplete, Tag("coverComplete")]
    | Annotated[ThumbnailComplete, Tag("thumbnailComplete")]
    | Annotated[OtherEvent, Tag("other")]
    | Annotated[_SmnEnvelope, Tag("smn")],
    Discriminator(
        _event_tag,
        custom_error_type="invalid_event",
        custom_error_message="not a JSON object",
    ),
]
_ADAPTER: TypeAdapter[Event | _SmnEnvelope] = TypeAdapter(_Decodable)


def decode(value: bytes | None) -> Event:
    """Turn a record value into an event.

    Raises :class:`InvalidRecord` (reason names the dotted path of the first
    problem) or :class:`IgnoredRecord` (a valid record with no event inside).
    """
    if not value:
        raise InvalidRecord("empty record value")
    decoded = _validate(value, prefix="")
    if not isinstance(decoded, _SmnEnvelope):
        return decoded
    if decoded.type != "Notification":
        raise IgnoredRecord(f"SMN {decoded.type} envelope carries no VOD event")
    if not decoded.message:
        raise InvalidRecord("message: SMN notification without a message")
    inner = _validate(decoded.message.encode(), prefix="message.")
    if isinstance(inner, _SmnEnvelope):
        raise InvalidRecord("message: SMN envelope nested inside an SMN envelope")
    return inner


def _validate(value: bytes, *, prefix: str) -> Event | _SmnEnvelope:
    try:
        return _ADAPTER.validate_json(value)
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc, prefix)) from None


def _reason(exc: ValidationError, prefix: str) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    # Drop the union tag pydantic puts first in the location; users think in payload paths.
    loc = [
        str(part)
        for part in first["loc"]
        if part not in ("coverComplete", "thumbnailComplete", "other", "smn")
    ]
    path = prefix + ".".join(loc) if loc else (prefix.rstrip(".") or "value")
    if first["type"] in ("json_invalid", "json_type"):
        return f"{path}: not valid JSON ({first['msg']})"[:_MAX_REASON]
    return f"{path}: {first['msg']}"[:_MAX_REASON]
