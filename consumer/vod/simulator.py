"""A VOD look-alike over HTTP, for tests and the demo: the three asset APIs the project
calls, behind the gateway's checks (AK/SK signatures with key lockout, project, quotas)
and with faults to inject. Its state lives in ``simstate.SimState``.

Every request passes the same steps, in the order a real call meets them: network
faults (latency, reset, timeout), the gateway (authentication, project, quota), a
backend fault (5xx), then the operation. Each answer carries an X-Request-Id.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
from aiohttp import web
from aiohttp.typedefs import Handler

from consumer.vod.models import ProcessTaskRequest
from consumer.vod.signing import Problem, verify
from consumer.vod.simstate import QuotaGroup, SimState

__all__ = ["SimServer", "make_app", "run_simulator"]

_STATE = web.AppKey("state", SimState)
_CATEGORIES = frozenset({"base_info", "transcode_info", "thumbnail_info", "review_info"})
# The asset a snapshot URL belongs to: set-cover requests carry no asset id.
_ASSET_IN_URL = re.compile(r"/asset/([^/]+)/snapshot/")


class _Answer(Exception):
    """An error answer, raised from any step and rendered once."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(code)
        self.status, self.code, self.msg = status, code, msg


def _json(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    return web.json_response(body, status=status, headers={"X-Request-Id": request_id})


def _error(answer: _Answer, request_id: str) -> web.Response:
    body = {"error_code": answer.code, "error_msg": answer.msg}
    if answer.code.startswith("APIG"):  # only the gateway puts the id in the body
        body["request_id"] = request_id
    return _json(answer.status, body, request_id)


# Operations: (state, request, body) -> (status, JSON body or None).
_Result = tuple[int, dict[str, Any] | None]
_Operation = Callable[[SimState, web.Request, bytes], Awaitable[_Result]]


async def _show_asset_detail(state: SimState, request: web.Request, _: bytes) -> _Result:
    asset_id = request.query.get("asset_id", "")
    categories = request.query.getall("categories", [])
    if not asset_id or not set(categories) <= _CATEGORIES:
        raise _Answer(400, "VOD.10053", "invalid asset_id or categories")
    asset = state.find_asset(asset_id)
    if asset is None:
        raise _Answer(400, "VOD.10062", "asset does not exist")
    return 200, asset.detail(categories)


async def _update_cover(state: SimState, _: web.Request, body: bytes) -> _Result:
    try:
        url = json.loads(body)["thumbnailUrl"]
    except (ValueError, KeyError, TypeError):
        raise _Answer(400, "VOD.10053", "thumbnailUrl is required") from None
    # No trimming here: a client that sends the docs' padded URL must see it refused.
    match = _ASSET_IN_URL.search(url) if isinstance(url, str) else None
    if match is None:
        raise _Answer(400, "VOD.10053", "thumbnailUrl is not a snapshot URL")
    asset = state.find_asset(match.group(1))
    if asset is None:
        raise _Answer(400, "VOD.10062", "asset does not exist")
    if url not in asset.snapshot_urls():
        raise _Answer(400, "VOD.10053", "thumbnailUrl is not a snapshot of the asset")
    asset.cover_url = state.cover_url(asset.asset_id)
    asset.cover_source = url
    return 204, None


async def _create_process_task(state: SimState, _: web.Request, body: bytes) -> _Result:
    try:
        task = ProcessTaskRequest.model_validate_json(body)
    except pydantic.ValidationError:
        raise _Answer(400, "VOD.10053", "invalid process task") from None
    asset = state.find_asset(task.asset_id)
    if asset is None:
        raise _Answer(400, "VOD.10062", "asset does not exist")
    if asset.running_task is not None:
        raise _Answer(400, "VOD.10080", "a snapshot task is still processing")
    task_id = state.start_task(asset, task.thumbnail)
    return 202, {"asset_id": asset.asset_id, "thumbnail_task_id": task_id}


# Steps before the operation.


async def _network_faults(state: SimState, request: web.Request) -> str | None:
    """Latency, then maybe a dropped connection or a late answer; names the fault."""
    faults, rng = state.faults, state.rng
    low, high = faults.latency
    if high > 0:
        await asyncio.sleep(rng.uniform(low, high))
    if rng.random() < faults.reset_rate and request.transport is not None:
        request.transport.abort()
        return "reset"
    if rng.random() < faults.timeout_rate:
        # Past the client's timeout. A client still waiting then gets a late answer; one
        # that hung up ends the handler here when the runner cancels handlers on
        # disconnect (run_simulator does).
        await asyncio.sleep(faults.timeout_sleep)
        return "timeout"
    return None


def _authenticate(state: SimState, request: web.Request, body: bytes) -> None:
    """Token or AK/SK. AK/SK calls must name their project in X-Project-Id; token calls
    need not (the token is scoped), but may not name another one."""
    project = request.headers.get("X-Project-Id")
    token = request.headers.get("X-Auth-Token")
    if token is not None:
        if not any(hmac.compare_digest(token.encode(), t.encode()) for t in state.tokens):
            raise _Answer(401, "APIGW.0301", "invalid token")
        project = project or request.match_info["project_id"]
    else:
        _verify_signature(state, request, body)
    if project != request.match_info["project_id"]:
        raise _Answer(401, "APIGW.0301", "X-Project-Id does not match the request")


def _verify_signature(state: SimState, request: web.Request, body: bytes) -> None:
    verdict = verify(
        request.method,
        request.rel_url.raw_path,
        request.rel_url.raw_query_string,
        request.headers,
        body,
        state.keys.get,
        datetime.fromtimestamp(state.clock(), UTC),
    )
    if verdict.access_key is not None and state.key_locked(verdict.access_key):
        raise _Answer(401, "APIGW.0301", "access key locked after repeated failures")
    if verdict.problem is Problem.CLOCK_SKEW:
        raise _Answer(401, "APIGW.0303", "X-Sdk-Date is more than 15 minutes off")
    if verdict.access_key is None:
        raise _Answer(401, "APIGW.0301", "missing or malformed authentication")
    if verdict.problem is not None:
        state.signature_failed(verdict.access_key)
        raise _Answer(401, "APIGW.0301", "signature verification failed")
    state.signature_passed(verdict.access_key)


def _gateway(state: SimState, request: web.Request, body: bytes, group: QuotaGroup) -> None:
    _authenticate(state, request, body)
    project = request.match_info["project_id"]
    if project != state.project_id:
        raise _Answer(403, "VOD.10074", "no permission for this project")
    if not state.admit(project, group):
        raise _Answer(429, "APIG.0308", "the throttling threshold has been reached")


def _backend_fault(state: SimState) -> None:
    if state.rng.random() < state.faults.error_rate:
        raise _Answer(500, "VOD.10051", "internal error")


def _endpoint(operation: str, group: QuotaGroup, run: _Operation) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[_STATE]
        request_id = uuid.uuid4().hex
        body = await request.read()
        fault = await _network_faults(state, request)
        if fault == "reset":
            state.calls[operation, fault] += 1
            return web.Response()  # never written: the connection is gone
        try:
            _gateway(state, request, body, group)
            _backend_fault(state)
            status, payload = await run(state, request, body)
        except _Answer as answer:
            state.calls[operation, fault or answer.code] += 1
            return _error(answer, request_id)
        state.calls[operation, fault or "ok"] += 1
        if payload is None:
            return web.Response(status=status, headers={"X-Request-Id": request_id})
        return _json(status, payload, request_id)

    return handle


def make_app(state: SimState) -> web.Application:
    """The simulator as an aiohttp application; its snapshot tasks stop with it."""
    app = web.Application()
    app[_STATE] = state
    prefix = "/v1.0/{project_id}/asset"
    app.router.add_get(
        f"{prefix}/details", _endpoint("show_asset_detail", "query", _show_asset_detail)
    )
    app.router.add_put(f"{prefix}/cover", _endpoint("update_cover", "write", _update_cover))
    app.router.add_post(
        f"{prefix}/process", _endpoint("create_process_task", "write", _create_process_task)
    )

    async def close_state(_: web.Application) -> None:
        await state.close()

    app.on_cleanup.append(close_state)
    return app


@dataclass(frozen=True, slots=True)
class SimServer:
    """A running simulator: its base URL (the client's endpoint) and how to stop it."""

    url: str
    stop: Callable[[], Awaitable[None]]


async def run_simulator(host: str, port: int, state: SimState) -> SimServer:
    """Serve the simulator on ``host:port`` (port 0 picks a free one) until ``stop``."""
    # handler_cancellation: a client that gives up on a slow request ends its handler,
    # so stopping never waits out an injected timeout.
    runner = web.AppRunner(make_app(state), handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return SimServer(f"http://{bound_host}:{bound_port}", runner.cleanup)
