"""What the engine calls on every record it admits: decode the VOD event once and key it
by its asset, so one asset's events run one at a time, in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consumer.errors import InvalidRecord, RecordError
from consumer.events import Event, decode, decode_record
from consumer.kafka.source import Record
from consumer.redelivery.headers import unreadable

__all__ = ["Payload", "describe", "prepare"]

#: The event, or why the record holds none (it still gets exactly one outcome).
Payload = Event | RecordError


def prepare(record: Record) -> tuple[str | None, Payload]:
    """``(asset id or None, payload)``; without an asset id the engine keys by record key."""
    headers = record.headers
    if headers and (why := unreadable(headers)) is not None:
        return None, InvalidRecord(why)
    try:
        # Headers may make it a CloudEvent in binary mode; most records have none.
        event = decode_record(record.value, headers) if headers else decode(record.value)
    except RecordError as exc:
        return None, exc
    return event.asset_id, event


def describe(payload: Payload) -> Mapping[str, Any]:
    """The event's fields on every line about its record."""
    if isinstance(payload, RecordError):
        return {"asset_id": None, "event_type": None}
    return {"asset_id": payload.asset_id, "event_type": payload.event_type}
