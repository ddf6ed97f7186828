"""VOD's failures as a small typed tree, so a handler catches by what to do next.

VodError
├── VodPermanentError   this request will never succeed as sent
├── VodRetryLater       the asset's state does not allow it yet (retryable)
├── VodTransientError   may pass on its own (retryable; a consumer TransientError)
│   └── VodThrottled    over quota: slow down, ``retry_after`` seconds
└── VodSystemicError    authentication, clock, account or permission: every record
                        would fail the same way, so retrying one record is useless
                        (the daemon opens a circuit instead)

``classify`` maps an error answer to the tree: by ``error_code`` first, by HTTP status
when the code is missing or unknown (VOD_API.md section 4).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from consumer.errors import TransientError

__all__ = [
    "VodError",
    "VodPermanentError",
    "VodRetryLater",
    "VodSystemicError",
    "VodThrottled",
    "VodTransientError",
    "classify",
]


class VodError(Exception):
    """An error answer (or no answer) from VOD; ``status`` is None when none came back."""

    retryable = False

    def __init__(
        self,
        error_code: str | None,
        error_msg: str | None,
        status: int | None,
        request_id: str | None = None,
    ) -> None:
        self.error_code = error_code
        self.error_msg = error_msg
        self.status = status
        self.request_id = request_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        fields = {
            "status": self.status,
            "error_code": self.error_code,
            "error_msg": self.error_msg,
            "request_id": self.request_id,
        }
        return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None) or "no details"


class VodPermanentError(VodError):
    """Invalid parameter, unknown or blocked asset, failed snapshot task, ..."""


class VodRetryLater(VodError):
    """The asset is still being processed; the same call can work later."""

    retryable = True


class VodTransientError(VodError, TransientError):
    """Internal errors, 5xx, timeouts, connection errors."""

    retryable = True


class VodThrottled(VodTransientError):
    """Over the per-tenant quota. Huawei's FAQ says to retry after 2-5 s; the default
    hint is drawn from that range so throttled callers do not come back in step."""

    def __init__(
        self,
        error_code: str | None,
        error_msg: str | None,
        status: int | None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = random.uniform(2.0, 5.0) if retry_after is None else retry_after
        super().__init__(error_code, error_msg, status, request_id)


class VodSystemicError(VodError):
    """Authentication, clock skew, account state or permission."""

    # Not this event's fault: the pipeline holds the event until VOD is healthy again.
    systemic = True


_CLASSES: dict[type[VodError], tuple[str, ...]] = {
    VodPermanentError: (
        "VOD.10062",  # asset or resource does not exist (seen with 400 and 403)
        "VOD.10053",  # invalid parameter
        "VOD.10081",
        "VST.10001",
        "VOD.10063",  # unsupported media type
        "VOD.10099",  # asset blocked
        "VOD.10104",  # snapshot task failed: a new task is a new decision, not a retry
    ),
    VodRetryLater: (
        "VOD.10060",  # asset state does not allow the operation yet
        "VOD.10061",
        "VOD.10083",
        "VOD.10080",  # task still processing
    ),
    VodTransientError: ("VOD.10051", "VOD.10052", "VST.10002"),  # internal errors
    VodThrottled: ("VOD.10127", "APIG.0308", "APIGW.0308"),
    VodSystemicError: (
        "APIGW.0301",  # authentication failed
        "VOD.10054",
        "VST.10004",
        "APIGW.0303",  # X-Sdk-Date more than 15 minutes off
        "VOD.10055",  # account not verified, in arrears, frozen
        "VOD.10056",
        "VOD.10057",
        "VOD.10120",
        "VOD.10132",
        "VOD.10074",  # no permission
        "VOD.10111",
        "VOD.10133",
    ),
}
_BY_CODE: Mapping[str, type[VodError]] = {
    code: cls for cls, codes in _CLASSES.items() for code in codes
}


def _by_status(status: int) -> type[VodError]:
    if status == 429:
        return VodThrottled
    if status >= 500 or status == 408:
        return VodTransientError
    # An unknown code on a 401 is still a failed authentication: no record will pass.
    if status == 401:
        return VodSystemicError
    return VodPermanentError


def _text(body: Mapping[str, Any] | None, key: str) -> str | None:
    value = body.get(key) if body is not None else None
    return value if isinstance(value, str) and value else None


def classify(status: int, body: Mapping[str, Any] | None, request_id: str | None) -> VodError:
    """The error for a non-2xx answer; ``request_id`` (the X-Request-Id header) wins over
    the body's, which only gateway errors carry."""
    code = _text(body, "error_code")
    cls = _BY_CODE.get(code) if code is not None else None
    if cls is None:
        cls = _by_status(status)
    request_id = request_id or _text(body, "request_id")
    return cls(code, _text(body, "error_msg"), status, request_id)
