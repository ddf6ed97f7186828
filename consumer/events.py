"""VOD events as typed values, and the one function that turns record bytes into them.

A record holds the bare VOD event JSON or an envelope around it: SMN's (the event as a
JSON string in ``message``), MFS's (``message``, a string or the object), a CloudEvent
(``data``; structured mode, EventGrid's ``{"events": [...]}`` of one, or binary mode
with ``ce_*`` headers: :func:`decode_record`). All decode to the same event. Models
accept fields they do not know, because VOD adds fields over time, and event
types they do not know decode to :class:`OtherEvent`, which no default route
matches.

Over 300 lines on purpose: every shape a record may take is one tagged union decoded in
one pass (one parse per record is the hot path of ``make bench``), and the envelopes'
nesting rules read best beside it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
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
    "decode_record",
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
# VOD (and the official SDK) may write null for an empty list: read it as one. After the
# native parse, not before: a before-validator makes pydantic build the list in Python.
# (Typed as the tuple it always is once validated.)
if TYPE_CHECKING:
    _Snapshots = tuple[Snapshot, ...]
else:
    _Snapshots = Annotated[
        tuple[Snapshot, ...] | None, AfterValidator(lambda v: () if v is None else v)
    ]


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


class _MfsEnvelope(_Model):
    # The event as a JSON string (what MFS signs), or as the object itself.
    message: str | dict[str, Any]


class _CloudEvent(_Model):
    specversion: str
    id: str
    source: str
    type: str
    data: Any = None
    data_base64: str | None = None


class _EventGrid(_Model):
    events: list[Any]


Event = CoverComplete | ThumbnailComplete | OtherEvent
_Envelope = _SmnEnvelope | _MfsEnvelope | _CloudEvent | _EventGrid
_NAMES: dict[type[Any], str] = {
    _SmnEnvelope: "an SMN envelope",
    _MfsEnvelope: "an MFS envelope",
    _CloudEvent: "a CloudEvent",
    _EventGrid: "an EventGrid batch",
}


def _event_tag(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    if "event_type" not in raw:
        if "specversion" in raw:
            return "cloudevent"
        if "type" in raw and ("message" in raw or "topic_urn" in raw):
            return "smn"
        if "message" in raw:
            return "mfs"
        if "events" in raw:
            return "eventgrid"
    kind = raw.get("event_type")
    if not isinstance(kind, str):
        return "other"  # lets validation report the missing/mistyped field by name
    canonical = _canonical_type(kind)
    return canonical if canonical in ("coverComplete", "thumbnailComplete") else "other"


_TAGS = ("coverComplete", "thumbnailComplete", "other", "smn", "mfs", "cloudevent", "eventgrid")
_Decodable = Annotated[
    Annotated[CoverComplete, Tag("coverComplete")]
    | Annotated[ThumbnailComplete, Tag("thumbnailComplete")]
    | Annotated[OtherEvent, Tag("other")]
    | Annotated[_SmnEnvelope, Tag("smn")]
    | Annotated[_MfsEnvelope, Tag("mfs")]
    | Annotated[_CloudEvent, Tag("cloudevent")]
    | Annotated[_EventGrid, Tag("eventgrid")],
    Discriminator(
        _event_tag,
        custom_error_type="invalid_event",
        custom_error_message="not a JSON object",
    ),
]
_ADAPTER: TypeAdapter[Event | _Envelope] = TypeAdapter(_Decodable)
_EVENTS: tuple[type[Any], ...] = (CoverComplete, ThumbnailComplete, OtherEvent)
# What each envelope may hold besides a bare event: a CloudEvent (or EventGrid's batch of
# one) may carry what SMN or MFS delivered; nothing else nests.
_INNER: dict[type[Any], tuple[type[Any], ...]] = {
    _EventGrid: (_CloudEvent,),
    _CloudEvent: (_SmnEnvelope, _MfsEnvelope),
}


def decode(value: bytes | None) -> Event:
    """Turn a record value into an event: bare VOD JSON, or inside an SMN or MFS envelope,
    a CloudEvent (structured mode) or EventGrid's ``{"events": [one CloudEvent]}``.

    Raises :class:`InvalidRecord` (reason names the dotted path of the first
    problem) or :class:`IgnoredRecord` (a valid record with no event inside).
    """
    if not value:
        raise InvalidRecord("empty record value")
    return _unwrap(_validate(value, prefix=""), prefix="")


def decode_record(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> Event:
    """:func:`decode`, reading the record's headers too: a CloudEvent in binary mode
    (``ce_*`` headers, the value its data) or announced as structured (``content-type:
    application/cloudevents+json``)."""
    content_type = spec = None
    for key, raw in headers:
        name = key.lower()
        if name == "content-type" and raw is not None:
            content_type = raw.decode("utf-8", "replace").strip().lower()
        elif name == "ce_specversion":
            spec = (raw or b"").decode("utf-8", "replace").strip()
    if spec is not None:
        if spec != "1.0":
            raise InvalidRecord(f"header ce_specversion: {spec[:20]!r} is not CloudEvents 1.0")
        if content_type is not None and not _is_json(content_type):
            raise InvalidRecord(f"header content-type: {content_type[:60]} is not JSON data")
        return decode(value)
    if content_type is not None and content_type.startswith("application/cloudevents"):
        if not value:
            raise InvalidRecord("empty record value")
        decoded = _validate(value, prefix="")
        if not isinstance(decoded, _CloudEvent | _EventGrid):
            raise InvalidRecord("specversion: content-type says a CloudEvent; none is here")
        return _unwrap(decoded, prefix="")
    return decode(value)


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip()
    return kind in ("application/json", "text/json") or kind.endswith("+json")


def _unwrap(decoded: Event | _Envelope, prefix: str) -> Event:
    """The event inside ``decoded``, unwrapping envelopes as far as they may nest."""
    while True:
        if isinstance(decoded, CoverComplete | ThumbnailComplete | OtherEvent):
            return decoded
        inner, where = _opened(decoded, prefix)
        if not isinstance(inner, _EVENTS + _INNER.get(type(decoded), ())):
            raise InvalidRecord(
                f"{where.rstrip('.')}: {_NAMES[type(inner)]} nested inside {_NAMES[type(decoded)]}"
            )
        decoded, prefix = inner, where


def _opened(envelope: _Envelope, prefix: str) -> tuple[Event | _Envelope, str]:
    """What one envelope holds, and the path prefix of its fields."""
    if isinstance(envelope, _SmnEnvelope):
        if envelope.type != "Notification":
            raise IgnoredRecord(f"SMN {envelope.type} envelope carries no VOD event")
        if not envelope.message:
            raise InvalidRecord(f"{prefix}message: SMN notification without a message")
        where = prefix + "message."
        return _validate(envelope.message.encode(), prefix=where), where
    if isinstance(envelope, _MfsEnvelope):
        message, where = envelope.message, prefix + "message."
        return _validate(
            message.encode() if isinstance(message, str) else message, prefix=where
        ), where
    if isinstance(envelope, _EventGrid):
        if len(envelope.events) != 1:
            raise InvalidRecord(
                f"{prefix}events: {len(envelope.events)} CloudEvents in one record; one expected"
            )
        return _validate(envelope.events[0], prefix=prefix + "events.0."), prefix + "events.0."
    if envelope.specversion != "1.0":
        raise InvalidRecord(f"{prefix}specversion: only CloudEvents 1.0 is read")
    where = prefix + "data."
    if envelope.data is not None:
        data = envelope.data
        return _validate(data.encode() if isinstance(data, str) else data, prefix=where), where
    if envelope.data_base64 is not None:
        try:
            raw = base64.b64decode(envelope.data_base64, validate=True)
        except ValueError:
            raise InvalidRecord(f"{prefix}data_base64: not valid Base64") from None
        return _validate(raw, prefix=where), where
    raise InvalidRecord(f"{prefix}data: CloudEvent without data")


def _validate(value: bytes | object, *, prefix: str) -> Event | _Envelope:
    try:
        if isinstance(value, bytes):
            return _ADAPTER.validate_json(value)
        return _ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc, prefix)) from None


def _reason(exc: ValidationError, prefix: str) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    # Drop the union tag pydantic puts first in the location; users think in payload paths.
    loc = [str(part) for part in first["loc"] if part not in _TAGS]
    path = prefix + ".".join(loc) if loc else (prefix.rstrip(".") or "value")
    if first["type"] in ("json_invalid", "json_type"):
        return f"{path}: not valid JSON ({first['msg']})"[:_MAX_REASON]
    return f"{path}: {first['msg']}"[:_MAX_REASON]
