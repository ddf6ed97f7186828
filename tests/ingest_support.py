"""Test support for the ingest: the real signed SMN message, signing keys of our own,
and the ingest as a process."""

from __future__ import annotations

import base64
import copy
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from consumer.devtools.broker import wait_for_port
from consumer.devtools.harness import DaemonProcess, clean_env
from consumer.devtools.simulator.notify import SmnSigner

TESTDATA = Path("/work/shared/vod/testdata")
_LOCAL = Path(__file__).resolve().parent / "data"
REAL_MESSAGE_FILE = "smn_notification_cn-south-1.json"
REAL_CERT_FILE = "smn_signing_cert.pem"
REAL_TOPIC = "urn:smn:cn-south-1:0ba6e278cc80f3562f48c00242b9c5d8:yishou_daily"


def shared_file(name: str) -> bytes:
    """A file of shared/vod/testdata (a copy under tests/data when that is absent)."""
    path = TESTDATA / name
    return (path if path.exists() else _LOCAL / name).read_bytes()


def real_message() -> dict[str, str]:
    """The real signed SMN Notification (a deep copy each time)."""
    message: dict[str, str] = json.loads(shared_file(REAL_MESSAGE_FILE))
    return copy.deepcopy(message)


def sign_text(signer: SmnSigner, text: str) -> str:
    """A signature of ``text`` as given, by ``signer``'s key (to sign things SMN would not)."""
    key = signer._key  # the test's own key
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, Any]]:
    """POST with the standard library: (status, JSON answer)."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, "no answer"


def start_ingest(
    tmp: Path, config: dict[str, Any], port: int, env: dict[str, str] | None = None
) -> DaemonProcess:
    """``cover-consumer ingest`` with ``config`` (JSON is YAML), its lines in tmp/ingest.out,
    once its port answers."""
    path = tmp / f"ingest-{port}.yaml"
    path.write_text(json.dumps(config))
    process = DaemonProcess(
        tmp / f"ingest-{port}.out",
        clean_env(tmp / "no-secrets", env),
        path,
        command="ingest",
    )
    wait_for_port(port, timeout=20)
    return process


def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
        assert time.monotonic() < deadline, "the ingest never became ready"
        time.sleep(0.1)
