"""Why a notification is not taken: one exception, answered and logged in one place.

``reason`` is a short code from a fixed set (a metric label, so it never holds free text);
``detail`` says what exactly, for the answer's body and the log line. Neither ever holds
a secret, a signature or an unsubscribe URL.
"""

from __future__ import annotations

__all__ = ["Refused"]


class Refused(Exception):
    """Answer ``status`` (4xx: the sender must not retry; 5xx: it should) and log why."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
