"""An async VOD client over an aiohttp session (``vod_session``: its own pool).

Each call raises a ``consumer.vod.errors`` error on failure and, when the caller passes
a ``calls`` list, appends a ``VodCall`` to it (success or not), so a handler can put
what it asked VOD on its outcome line. The client keeps no state between calls but its
key (``consumer.vod.credentials``): on a 401 it reads the key again, and sends the call
once more only when the key did change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
import pydantic
from pydantic import SecretStr
from yarl import URL

from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.vod.credentials import CredentialSource, StaticCredentials
from consumer.vod.errors import VodError, VodThrottled, VodTransientError, classify
from consumer.vod.models import (
    TASK_PAGE,
    AssetDetail,
    ProcessTaskRequest,
    ProcessTaskResponse,
    ThumbnailTasks,
    UpdateCoverRequest,
)
from consumer.vod.signing import Credentials, QueryValue, canonical_query, sign

__all__ = ["Category", "VodCall", "VodClient", "vod_session"]

_M = TypeVar("_M", bound=pydantic.BaseModel)

Category = Literal["base_info", "transcode_info", "thumbnail_info", "review_info"]
# A throttled caller waits what VOD says, but not longer than this: a broken header must
# not stop VOD calls for an hour.
_MAX_RETRY_AFTER = 600.0


def vod_session(max_connections: int) -> aiohttp.ClientSession:
    """A connection pool for VOD alone, sized to the calls allowed in flight.

    aiohttp re-sends an idempotent request (GET, PUT) once when its connection was reset,
    on its own: one quota token then became two requests at VOD. Off here: whether and
    when to call again is the pipeline's decision, with a token of its own. (aiohttp's
    test client turns it off the same way; tests/unit/test_vod_client.py fails if that
    stops working.)
    """
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max_connections))
    session._retry_connection = False
    return session


@dataclass(frozen=True, slots=True)
class VodCall:
    """One request to VOD as an outcome line shows it; ``status`` is None without an
    answer (timeout, connection error)."""

    operation: str
    status: int | None
    error_code: str | None
    request_id: str | None
    duration_ms: float


class VodClient:
    """VOD's asset APIs, signed with an AK/SK (permanent, or temporary with its security
    token): the key pair itself, or ``credentials`` to read it from (secret files).

    There is no IAM token mode: a token lasts 24 hours, and the official SDK signs with
    AK/SK only (README, "Authenticating to VOD").
    """

    __slots__ = (
        "_clock",
        "_credentials",
        "_endpoint",
        "_host",
        "_session",
        "_timeout",
        "project_id",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        endpoint: str,
        project_id: str,
        access_key: str | None = None,
        secret_key: str | SecretStr | None = None,
        security_token: str | SecretStr | None = None,
        credentials: CredentialSource | None = None,
        timeout: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        given = (access_key, secret_key, security_token)
        if credentials is None and access_key is not None and secret_key is not None:
            token = None if security_token is None else _secret(security_token)
            credentials = StaticCredentials(Credentials(access_key, _secret(secret_key), token))
        elif credentials is None or any(part is not None for part in given):
            raise ValueError(
                "give either access_key and secret_key (and security_token), or credentials"
            )
        self._credentials = credentials
        self._session = session
        self._endpoint = endpoint.rstrip("/")
        self._host = urlsplit(self._endpoint).netloc.rpartition("@")[2]
        self.project_id = project_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock

    def __repr__(self) -> str:
        temporary = self._credentials.current().security_token is not None
        auth = "temporary ak/sk" if temporary else "ak/sk"
        return (
            f"VodClient(endpoint={self._endpoint!r}, project_id={self.project_id!r}, auth={auth})"
        )

    async def show_asset_detail(
        self,
        asset_id: str,
        categories: Sequence[Category] = ("base_info", "thumbnail_info"),
        *,
        calls: list[VodCall] | None = None,
    ) -> AssetDetail:
        """The asset's cover and snapshots (ShowAssetDetail)."""
        params: dict[str, QueryValue] = {"asset_id": asset_id}
        if categories:
            params["categories"] = list(categories)
        body = await self._call("show_asset_detail", "GET", "asset/details", params, None, calls)
        return _parse(AssetDetail, body)

    async def update_cover(self, thumbnail_url: str, *, calls: list[VodCall] | None = None) -> None:
        """Make one of the asset's snapshots its cover (UpdateCoverByThumbnail); the URL
        names the asset. VOD takes 3-5 minutes to show the change."""
        request = UpdateCoverRequest(thumbnail_url=thumbnail_url)
        payload = request.model_dump(by_alias=True)
        await self._call("update_cover", "PUT", "asset/cover", {}, payload, calls)

    async def create_process_task(
        self, request: ProcessTaskRequest, *, calls: list[VodCall] | None = None
    ) -> ProcessTaskResponse:
        """Start a snapshot task (CreateAssetProcessTask); a thumbnailComplete event
        announces its end."""
        payload = request.model_dump(exclude_none=True)
        body = await self._call("create_process_task", "POST", "asset/process", {}, payload, calls)
        return _parse(ProcessTaskResponse, body)

    async def list_thumbnail_tasks(
        self, asset_id: str, *, calls: list[VodCall] | None = None
    ) -> ThumbnailTasks:
        """The snapshot tasks started on the asset (ListThumbnailInfo; its first page, and
        the total of them all): how to tell, after a task request that got no answer,
        whether VOD started it anyway."""
        params: dict[str, QueryValue] = {"asset_id": asset_id, "limit": TASK_PAGE}
        body = await self._call(
            "list_thumbnail_tasks", "GET", "asset/thumbnails", params, None, calls, version="v1"
        )
        return _parse(ThumbnailTasks, body)

    async def _call(
        self,
        operation: str,
        method: str,
        resource: str,
        params: Mapping[str, QueryValue],
        payload: Mapping[str, Any] | None,
        calls: list[VodCall] | None,
        *,
        version: str = "v1.0",
    ) -> bytes:
        path = f"/{version}/{quote(self.project_id, safe='')}/{resource}"
        query = canonical_query(params)
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        # encoded=True: the query is already canonical and must go out byte for byte.
        url = URL(f"{self._endpoint}{path}" + (f"?{query}" if query else ""), encoded=True)
        request = (operation, method, url, path, query, body)
        used = self._credentials.current()
        content, error = await self._exchange(request, used, calls)
        # A 401 with a key that has changed since (a temporary key renewed, a key rotated):
        # one more try with the new one. With the same key, no: VOD locks a key after 5
        # failed signatures, and the circuit's probe asks again anyway.
        if error is not None and error.status == 401:
            fresh = self._credentials.reload()
            if fresh != used:
                content, error = await self._exchange(request, fresh, calls)
        if error is not None:
            raise error
        return content

    async def _exchange(
        self,
        request: tuple[str, str, URL, str, str, bytes],
        credentials: Credentials,
        calls: list[VodCall] | None,
    ) -> tuple[bytes, VodError | None]:
        """One request on the wire, recorded: its body and the error it answered, if any."""
        operation, method, url, path, query, body = request
        headers = self._headers(method, path, query, body, credentials)
        started = self._clock.monotonic()
        try:
            status, answer_headers, content = await self._send(method, url, headers, body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._record(calls, operation, None, None, None, started)
            kind = "timed out" if isinstance(exc, TimeoutError) else "connection failed"
            raise VodTransientError(None, f"{operation} {kind}", None) from exc
        request_id = answer_headers.get("X-Request-Id")
        error = classify(status, _json_object(content), request_id) if status >= 300 else None
        if isinstance(error, VodThrottled):
            wait = _retry_after(answer_headers.get("Retry-After"), self._clock.wall())
            if wait is not None:
                error.retry_after = wait  # VOD's own word beats the documented 2-5 s
        code = error.error_code if error is not None else None
        self._record(calls, operation, status, code, request_id, started)
        return content, error

    async def _send(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        # Never a redirect (nor does the SDK): it takes the signed call, token, a POST elsewhere.
        data, timeout = body or None, self._timeout
        async with self._session.request(
            method, url, data=data, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            return response.status, response.headers, await response.read()

    def _headers(
        self, method: str, path: str, query: str, body: bytes, credentials: Credentials
    ) -> dict[str, str]:
        headers = {"X-Project-Id": self.project_id}
        if body:
            headers["Content-Type"] = "application/json"
        return sign(
            method,
            self._host,
            path,
            query,
            headers,
            body,
            credentials,
            datetime.fromtimestamp(self._clock.wall(), UTC),
        )

    def _record(
        self,
        calls: list[VodCall] | None,
        operation: str,
        status: int | None,
        error_code: str | None,
        request_id: str | None,
        started: float,
    ) -> None:
        if calls is not None:
            elapsed = round((self._clock.monotonic() - started) * 1000, 1)
            calls.append(VodCall(operation, status, error_code, request_id, elapsed))


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (seconds, or an HTTP date), within 0..600."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.replace(tzinfo=when.tzinfo or UTC).timestamp() - now  # "-0000": UTC too
    return min(seconds, _MAX_RETRY_AFTER) if seconds > 0 else None  # 0, past, NaN: 2-5 s


def _secret(value: str | SecretStr) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(value)


def _json_object(content: bytes) -> dict[str, Any] | None:
    # A proxy's error page may be HTML, empty, or nested past json's limit: classify by status.
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _parse(model: type[_M], content: bytes) -> _M:
    try:
        return model.model_validate_json(content)
    except pydantic.ValidationError as exc:
        # A 2xx with a body we cannot read is most likely a proxy's page, not VOD's answer.
        raise VodTransientError(None, f"unreadable {model.__name__} answer", None) from exc
