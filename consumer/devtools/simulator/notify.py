"""VOD's notifications as the simulator sends them: SMN pushes signed with a certificate of
its own (as SMN signs: RSA PKCS#1 v1.5 SHA-256 over the type's fields, each ``key\\nvalue\\n``),
MFS callbacks with the console's HMAC, POSTed to the ingest and, like SMN, tried again on a
5xx or no answer (6 more tries; the delays are SMN's to choose, here the caller's).

The signer is written apart from the ingest's verifier on purpose: a test of one against
the other then checks both (the real message in shared/vod/testdata checks the verifier).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from consumer.testing.vodsim import TaskDone

__all__ = [
    "SMN_RETRIES",
    "Pusher",
    "SmnSigner",
    "TaskAnnouncer",
    "mfs_callback",
    "task_events",
]

SMN_RETRIES = 6  # SMN tries 6 more times after a 5xx, then drops the message
DEFAULT_TOPIC = "urn:smn:cn-north-4:sim-project:vod-events"
_SIGNED = {
    "Notification": ("message", "message_id", "subject", "timestamp", "topic_urn", "type"),
    "SubscriptionConfirmation": (
        "message",
        "message_id",
        "subscribe_url",
        "timestamp",
        "topic_urn",
        "type",
    ),
}
_SIGNED["UnsubscribeConfirmation"] = _SIGNED["SubscriptionConfirmation"]


class SmnSigner:
    """An RSA key and a self-signed certificate standing in for SMN's; signs envelopes."""

    def __init__(self, topic_urn: str = DEFAULT_TOPIC, region: str = "cn-north-4") -> None:
        self.topic_urn = topic_urn
        self.region = region
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cover-consumer SMN simulator")])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self.signing_cert_url = (
            f"https://smn.{region}.myhuaweicloud.com/smn/SMN_{region}_{uuid.uuid4().hex}.pem"
        )

    def write_certificate(self, path: Path) -> Path:
        """The certificate as PEM, for ``ingest.smn.certificates``."""
        path.write_bytes(self.cert_pem)
        return path

    def envelope(
        self,
        message: str,
        *,
        kind: str = "Notification",
        message_id: str | None = None,
        subject: str | None = "VOD event",
        subscribe_url: str | None = None,
        timestamp: float | None = None,
    ) -> dict[str, str]:
        """A signed SMN envelope of ``kind`` carrying ``message``."""
        when = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, UTC)
        fields = {
            "type": kind,
            "message_id": message_id or uuid.uuid4().hex,
            "topic_urn": self.topic_urn,
            "message": message,
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "signature_version": "v1",
            "signing_cert_url": self.signing_cert_url,
        }
        if kind == "Notification":
            if subject:
                fields["subject"] = subject
            fields["unsubscribe_url"] = (
                f"https://console.huaweicloud.com/smn/subscription/unsubscribe?region="
                f"{self.region}&subscription_urn={self.topic_urn}:{uuid.uuid4().hex}"
            )
        else:
            fields["subscribe_url"] = subscribe_url or ""
        fields["signature"] = self.sign(fields)
        return fields

    def sign(self, fields: Mapping[str, str]) -> str:
        text = "".join(
            f"{name}\n{fields[name]}\n" for name in _SIGNED[fields["type"]] if fields.get(name)
        )
        signature = self._key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    @staticmethod
    def headers(envelope: Mapping[str, str]) -> dict[str, str]:
        """The HTTP headers SMN sends with ``envelope``."""
        return {
            "Content-Type": "application/json; charset=UTF-8",
            "X-SMN-MESSAGE-TYPE": envelope["type"],
            "X-SMN-MESSAGE-ID": envelope["message_id"],
            "X-SMN-TOPIC-URN": envelope["topic_urn"],
        }


def mfs_callback(
    event: Mapping[str, Any] | str, key: bytes | None, now: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """An MFS callback's body (``{"message": <event JSON>}``) and headers, signed when
    ``key`` is given (``auth_timestamp`` in milliseconds)."""
    message = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
    body = json.dumps({"message": message}).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        stamp = str(int((time.time() if now is None else now) * 1000))
        content = b"VOD_" + stamp.encode() + b"_" + message.encode()
        headers["auth_timestamp"] = stamp
        headers["auth_sign"] = hmac.new(key, content, hashlib.sha256).hexdigest()
    return body, headers


class Pusher:
    """POSTs notifications to an ingest (``{url}/smn``, ``{url}/mfs``), trying again after
    a 5xx or no answer, as SMN does; counts what came back."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        signer: SmnSigner | None = None,
        mfs_key: bytes | None = None,
        retry_delays: Sequence[float] = (0.2, 0.5, 1, 2, 4, 8),
        timeout: float = 5.0,
    ) -> None:
        self._http = http
        self.url = url.rstrip("/")
        self.signer = signer
        self.mfs_key = mfs_key
        self._delays = tuple(retry_delays)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        #: Final answers by (transport, status); 0: no answer after every try.
        self.answers: Counter[tuple[str, int]] = Counter()
        self.retries = 0
        self.busy = 0

    async def smn(self, event: Mapping[str, Any] | str, **envelope: Any) -> int:
        """Sign and push ``event`` as an SMN Notification (or ``kind=`` another type)."""
        if self.signer is None:
            raise ValueError("no SMN signer")
        message = event if isinstance(event, str) else json.dumps(event)
        return await self.send_smn(self.signer.envelope(message, **envelope))

    async def send_smn(self, envelope: Mapping[str, str]) -> int:
        """Push an SMN envelope as it is (signed or not)."""
        return await self.post("smn", json.dumps(envelope).encode(), SmnSigner.headers(envelope))

    async def mfs(self, event: Mapping[str, Any] | str, key: bytes | None = None) -> int:
        """Push ``event`` as an MFS callback, signed with ``key`` (default: the pusher's)."""
        body, headers = mfs_callback(event, key if key is not None else self.mfs_key)
        return await self.post("mfs", body, headers)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST until an answer below 500, at most 1 + len(retry_delays) times."""
        self.busy += 1
        try:
            status = 0
            for attempt in range(len(self._delays) + 1):
                if attempt:
                    self.retries += 1
                    await asyncio.sleep(self._delays[attempt - 1])
                status = await self._post_once(f"{self.url}/{path}", body, headers)
                if 0 < status < 500:
                    break
            self.answers[path, status] += 1
            return status
        finally:
            self.busy -= 1

    async def _post_once(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            async with self._http.post(
                url, data=body, headers=dict(headers), timeout=self._timeout
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return 0


def task_events(done: TaskDone) -> list[tuple[str, dict[str, Any]]]:
    """What VOD announces when a snapshot task ends: thumbnailComplete, and coverComplete
    when the task set a cover."""
    info: dict[str, Any] = {
        "asset_id": done.asset_id,
        "task_id": done.task_id,
        "status": "SUCCEED" if done.succeeded else "FAILED",
    }
    if not done.succeeded:
        info |= {"error_code": done.error_code, "error_msg": done.error_msg}
    for snap in done.snapshots:
        info.setdefault(_snapshot_kind(snap.url), []).append(snap.model_dump())
    events = [("thumbnailComplete", {"event_type": "thumbnailComplete", "thumbnail_info": info})]
    if done.succeeded and done.cover_url:
        cover = {
            "asset_id": done.asset_id,
            "status": "SUCCEED",
            "cover_type": "HEAD_FRAME_COVER",
            "cover_urls": [{"offset": 0, "url": done.cover_url}],
        }
        events.append(("coverComplete", {"event_type": "coverComplete", "cover_info": cover}))
    return events


def _snapshot_kind(url: str) -> str:
    for kind in ("sample", "dots", "quantity"):
        if f"/snapshot/{kind}/" in url:
            return kind
    return "dots"


class TaskAnnouncer:
    """``SimState.on_task_done``: push each finished snapshot task's events to the ingest,
    as VOD does, by SMN or MFS (``transport``, or alternating with ``"both"``)."""

    def __init__(self, pusher: Pusher, transport: str = "smn") -> None:
        self._pusher = pusher
        self._transport = transport
        self._turn = 0
        #: Events pushed, by (kind, transport, final status).
        self.sent: Counter[tuple[str, str, int]] = Counter()
        self.busy = 0

    def next_transport(self) -> str:
        if self._transport != "both":
            return self._transport
        self._turn += 1
        return "smn" if self._turn % 2 else "mfs"

    async def __call__(self, done: TaskDone) -> None:
        self.busy += 1  # before the first await: the task is no longer "running"
        try:
            for kind, body in task_events(done):
                await self.push(kind, body)
        finally:
            self.busy -= 1

    async def push(self, kind: str, body: dict[str, Any]) -> int:
        """Push one event by the next transport; return the final status."""
        transport = self.next_transport()
        send = self._pusher.smn if transport == "smn" else self._pusher.mfs
        status = await send(body)
        self.sent[kind, transport, status] += 1
        return status
