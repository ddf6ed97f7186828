"""AK/SK request signing (SDK-HMAC-SHA256), as Huawei Cloud's API gateway checks it.

The algorithm is the one of the official SDK's signer (VOD_API.md section 5), written as
pure functions: the time comes in as an argument, so signing is reproducible and the
official test vectors pin it down. ``verify`` is the gateway's side of the same
computation; the simulator uses it, so a client bug shows up as a 401 in tests.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from pydantic import SecretStr

__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "MAX_CLOCK_SKEW",
    "SECURITY_TOKEN_HEADER",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "Problem",
    "QueryValue",
    "Verification",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "sign",
    "verify",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_CLOCK_SKEW = timedelta(minutes=15)

_DATE_HEADER = "x-sdk-date"
SECURITY_TOKEN_HEADER = "X-Security-Token"
_CONTENT_SHA_HEADER = "x-sdk-content-sha256"
# Content types whose bodies are hashed; any other body is sent unsigned (the SDK's rule).
_HASHED_CONTENT_TYPES = ("application/json", "application/bson")

QueryValue = str | int | float | bool | Sequence[str | int | float | bool]


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key and its secret; the secret never shows in a repr or a log line.

    A temporary key (from IAM or an agency, valid 15 minutes to 24 hours) comes with a
    ``security_token``, sent as X-Security-Token and signed with the other headers.
    """

    access_key: str
    secret_key: SecretStr
    security_token: SecretStr | None = None


def _encode(text: str) -> str:
    # quote() always keeps unreserved characters; safe="~" adds nothing else, so "/" is encoded.
    return quote(text, safe="~")


def _scalar(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical_uri(path: str) -> str:
    """Each segment decoded then re-encoded, with a trailing "/" (for signing only)."""
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(params: Mapping[str, QueryValue]) -> str:
    """The canonical query string, which is also what goes on the wire.

    A list becomes repeated ``k=v`` pairs. Values are sorted as encoded strings rather
    than as the caller's values: the gateway only ever sees strings, so this is the
    order it recomputes.
    """
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        values = [value] if isinstance(value, str | int | float | bool) else value
        pairs.extend((_encode(key), _encode(_scalar(item))) for item in values)
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _canonical_raw_query(query: str) -> str:
    # Splits by hand instead of parse_qsl: "+" is a literal plus here, not a space.
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((_encode(unquote(key)), _encode(unquote(value))))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _signed_header_names(headers: Iterable[str]) -> list[str]:
    return sorted({name.lower() for name in headers if "_" not in name})


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The string whose hash is signed; ``headers`` must have lowercase names."""
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            _canonical_raw_query(query),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def _payload_hash(body: bytes, marker: str | None) -> str:
    """The body's hash, or the unsigned-payload marker in its place. An empty body hashes
    as empty even with the marker: the official SDK's signer does so, and the gateway
    accepts what the SDK signs (tests/contract/test_vod_sdk.py)."""
    if body and marker:
        return marker
    return hashlib.sha256(body).hexdigest()


def _signature(secret_key: str, date: str, request: str) -> str:
    digest = hashlib.sha256(request.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    return hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def sign(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    now: datetime,
) -> dict[str, str]:
    """The headers to send: ``headers`` plus Host, X-Sdk-Date, Authorization (and the
    unsigned-payload marker for non-JSON bodies, the security token of a temporary key).
    ``query`` is the wire query string."""
    out = {name: value for name, value in headers.items() if name.lower() != "host"}
    out["Host"] = host
    if credentials.security_token is not None:
        # Set before the signed headers are listed, so it is signed: the official SDK's
        # Credentials.sign_request adds it the same way, before its signer runs.
        out[SECURITY_TOKEN_HEADER] = credentials.security_token.get_secret_value()
    out["X-Sdk-Date"] = now.astimezone(UTC).strftime(DATE_FORMAT)
    content_type = next((v for k, v in out.items() if k.lower() == "content-type"), None)
    if content_type is not None and not content_type.startswith(_HASHED_CONTENT_TYPES):
        out["X-Sdk-Content-Sha256"] = UNSIGNED_PAYLOAD
    lowered = {name.lower(): value for name, value in out.items()}
    signed = _signed_header_names(out)
    payload_hash = _payload_hash(body, lowered.get(_CONTENT_SHA_HEADER))
    request = canonical_request(method, path, query, lowered, signed, payload_hash)
    signature = _signature(credentials.secret_key.get_secret_value(), out["X-Sdk-Date"], request)
    out["Authorization"] = (
        f"{ALGORITHM} Access={credentials.access_key}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return out


class Problem(enum.Enum):
    """Why a request's signature was refused."""

    MALFORMED = "malformed"  # no or unparsable Authorization, missing signed headers
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    CLOCK_SKEW = "clock_skew"


@dataclass(frozen=True, slots=True)
class Verification:
    """The verdict on one request; ``access_key`` is set whenever one could be read, and
    ``signed_headers`` (lowercase) whenever the Authorization header parsed."""

    access_key: str | None
    problem: Problem | None = None
    signed_headers: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return self.problem is None


def _parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        return None
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    access, signed, signature = (
        fields.get(key, "") for key in ("Access", "SignedHeaders", "Signature")
    )
    if not (access and signed and signature):
        return None
    return access, signed.split(";"), signature


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: Callable[[str], str | None],
    now: datetime,
) -> Verification:
    """Recompute the signature of a received request and compare it in constant time.

    ``query`` is the raw query string as received; ``lookup`` maps an access key to its
    secret (None when unknown). The X-Sdk-Date must be within 15 minutes of ``now``.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    parsed = _parse_authorization(lowered.get("authorization", ""))
    if parsed is None:
        return Verification(None, Problem.MALFORMED)
    access_key, signed, signature = parsed
    covered = frozenset(signed)
    # Host and date must be covered by the signature, or a replay could change them.
    if not {"host", _DATE_HEADER} <= covered or not covered <= lowered.keys():
        return Verification(access_key, Problem.MALFORMED, covered)
    try:
        date = datetime.strptime(lowered[_DATE_HEADER], DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return Verification(access_key, Problem.MALFORMED, covered)
    if abs(now - date) > MAX_CLOCK_SKEW:
        return Verification(access_key, Problem.CLOCK_SKEW, covered)
    secret_key = lookup(access_key)
    if secret_key is None:
        return Verification(access_key, Problem.UNKNOWN_KEY, covered)
    # An unsigned-payload marker only counts when it is itself signed; otherwise anyone
    # could add it to a captured request and swap the body.
    marker = lowered.get(_CONTENT_SHA_HEADER) if _CONTENT_SHA_HEADER in signed else None
    payload_hash = _payload_hash(body, marker)
    request = canonical_request(method, path, query, lowered, signed, payload_hash)
    expected = _signature(secret_key, lowered[_DATE_HEADER], request)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return Verification(access_key, Problem.BAD_SIGNATURE, covered)
    return Verification(access_key, None, covered)
