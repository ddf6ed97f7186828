"""Why a notification is not taken: one exception, answered and logged in one place.

``reason`` is a short code from a fixed set (a metric label, so it never holds free text);
``detail`` says what exactly, for the answer's body and the log line. Neither ever holds
a secret, a signature or an unsubscribe URL.
"""

from __future__ import annotations

__all__ = ["Refused", "refuse_unsigned_event"]


class Refused(Exception):
    """Answer ``status`` (4xx: the sender must not retry; 5xx: it should) and log why."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


# What the consumer reads in place of an envelope's "message" (consumer.events.decode):
# beside a signed message, such a field is text no signature covers.
_READ_FIRST = ("event_type", "specversion", "events")


def refuse_unsigned_event(document: object) -> None:
    """An envelope is forwarded as received, and its signature (SMN's, MFS's) covers only
    its message: refuse one carrying beside it a field the consumer would read instead."""
    if isinstance(document, dict) and "message" in document:
        for key in _READ_FIRST:
            if key in document:
                raise Refused(403, "unsigned_event", f"{key} beside the signed message")
