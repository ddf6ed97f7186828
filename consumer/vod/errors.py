"""VOD's failures as a small typed tree, so a handler catches by what to do next.

VodError
├── VodPermanentError   this request will never succeed as sent
├── VodRetryLater       the asset's state does not allow it yet (retryable)
├── VodTransientError   may pass on its own (retryable; a consumer TransientError)
│   └── VodThrottled    over quota: slow down, ``retry_after`` seconds
└── VodSystemicError    authentication, clock, account or permission: every record
                        would fail the same way, so retrying one record is useless
                        (the daemon opens a circuit instead)

``classify`` maps an error answer to the tree: by its code first (in any of the spellings
the official SDK reads, the gateway's ``APIG.`` and ``APIGW.`` alike), by HTTP status when
the code is missing or unknown (VOD_API.md section 4).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from consumer.errors import TransientError

__all__ = [
    "GATEWAY_PREFIXES",
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

    permanent = True  # escaping a handler: dead-lettered at once, no attempt is retried


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


# Huawei's API gateway in front of VOD spells its codes both ``APIG.xxxx`` and
# ``APIGW.xxxx`` (VOD_API.md section 3); each suffix here stands for both spellings.
GATEWAY_PREFIXES = ("APIG.", "APIGW.")
# VOD's own codes: an answer about this request, not about the caller.
_VOD_PREFIXES = ("VOD.", "VST.")

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
    VodThrottled: ("VOD.10127",),
    VodSystemicError: (
        "VOD.10054",  # authentication failed
        "VST.10004",
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
_GATEWAY_CLASSES: dict[type[VodError], tuple[str, ...]] = {
    VodThrottled: ("0308",),  # 429: the throttling threshold has been reached
    VodSystemicError: (
        "0101",  # 404: no such API here: the endpoint (or project in the path) is wrong
        "0301",  # 401: IAM authentication failed: signature, unknown/locked/expired key
        "0302",  # 403: the IAM user is not authorized for the API
        "0303",  # 401: app authentication failed, or X-Sdk-Date over 15 minutes off
        "0304",  # 403: the app is not authorized for the API
        "0305",  # 401: incorrect authentication information
        "0306",  # 403: API access denied
        "0307",  # 401: the token must be updated
        "0310",  # 403: the project is unavailable
        "0401",  # 403: unknown client IP address
        "0402",  # 403: the IP address is not authorized
        "0404",  # 403: access denied by the ACL
    ),
}
_BY_CODE: Mapping[str, type[VodError]] = {
    **{code: cls for cls, codes in _CLASSES.items() for code in codes},
    **{
        prefix + suffix: cls
        for cls, suffixes in _GATEWAY_CLASSES.items()
        for suffix in suffixes
        for prefix in GATEWAY_PREFIXES
    },
}


def _by_status(status: int, code: str | None) -> type[VodError]:
    """The class of an answer whose code is missing or not in the tables."""
    if status == 429:
        return VodThrottled
    if status >= 500 or status == 408:
        return VodTransientError
    # An unknown code on a 401 is still a failed authentication: no record will pass.
    if status == 401:
        return VodSystemicError
    # A 403 without a code of VOD's own came from the gateway (or a proxy before it):
    # the caller is refused, whatever the record. VOD's own 403s (VOD.10062 among them)
    # are about the request, so an unknown one stays permanent.
    if status == 403 and not (code or "").startswith(_VOD_PREFIXES):
        return VodSystemicError
    return VodPermanentError


# Where the official SDK looks for the code and the message, in its order: the pair of
# one spelling in the body, else the same in a nested object ({"error": {"code": ...}}).
_FIELDS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))
_MAX_NESTING = 3  # error bodies nest one level; deeper is not an error object


def _text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):  # IAM answers {"error": {"code": 401, ...}}
        return str(value)
    return value if isinstance(value, str) and value else None


def _find(body: Mapping[str, Any], depth: int = 0) -> Mapping[str, Any] | None:
    """The object holding the error code: ``body`` itself or a nested one."""
    if any(_text(body.get(code)) for code, _ in _FIELDS):
        return body
    if depth < _MAX_NESTING:
        for value in body.values():
            if isinstance(value, Mapping) and (found := _find(value, depth + 1)) is not None:
                return found
    return None


def _fields(body: Mapping[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """Code, message and request id, from whichever spelling the body uses."""
    if body is None:
        return None, None, None
    error = _find(body)
    if error is None:  # no code anywhere: a message alone may still tell something
        return None, _message(body), _text(body.get("request_id"))
    code, message = next(
        (code, _text(error.get(msg_key)) or _message(error))
        for code_key, msg_key in _FIELDS
        if (code := _text(error.get(code_key))) is not None
    )
    return code, message, _text(error.get("request_id")) or _text(body.get("request_id"))


def _message(body: Mapping[str, Any]) -> str | None:
    return next((m for _, key in _FIELDS if (m := _text(body.get(key))) is not None), None)


def classify(status: int, body: Mapping[str, Any] | None, request_id: str | None) -> VodError:
    """The error for a non-2xx answer, by code first and HTTP status second.

    The code is read as the official SDK reads it: ``error_code``/``error_msg``,
    ``errorCode``/``errorMsg`` or ``code``/``message``, at the top or in a nested error
    object. ``request_id`` (the X-Request-Id header) wins over the body's, which only
    gateway errors carry.
    """
    code, message, body_request_id = _fields(body)
    cls = _BY_CODE.get(code) if code is not None else None
    if cls is None:
        cls = _by_status(status, code)
    return cls(code, message, status, request_id or body_request_id)
