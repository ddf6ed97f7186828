"""A VOD look-alike over HTTP, for tests and the demo: the three asset APIs the project
calls, behind the gateway's checks (AK/SK signatures with key lockout, temporary keys and
their security tokens, project, quotas), answering in either of the gateway's code
spellings (``SimState.gateway_spelling``), and with faults to inject. Its state is a
``consumer.testing.vodsim.SimState`` and its operations are ``consumer.testing.vodops``'s,
which ``MemoryVod`` calls without HTTP.

Every request passes the same steps, in the order a real call meets them: the gateway
as it arrives (authentication, project, quota), then network and backend faults behind
it (latency, reset, timeout, 5xx), then the operation. Each answer carries an X-Request-Id.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from consumer.testing import vodops as ops
from consumer.testing.vodops import SimAnswer as _Answer
from consumer.testing.vodsim import QuotaGroup, SimState
from consumer.vod.signing import SECURITY_TOKEN_HEADER, Problem, verify

__all__ = ["SUBSCRIBE_PATH", "SimServer", "make_app", "run_simulator"]

_STATE = web.AppKey("state", SimState)
_CONFIRMED = web.AppKey("confirmed", list[str])
#: Where the simulator's SMN subscription confirmations point: a GET here confirms.
SUBSCRIBE_PATH = "/smn/subscribe"


def _json(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    return web.json_response(body, status=status, headers={"X-Request-Id": request_id})


def _spelt(code: str, state: SimState) -> str:
    """A gateway code (raised as ``APIG.xxxx``) as the state's gateway spells it."""
    prefix, _, number = code.partition(".")
    return f"{state.gateway_spelling}.{number}" if prefix in ("APIG", "APIGW") else code


def _error(state: SimState, answer: _Answer, request_id: str) -> web.Response:
    code = _spelt(answer.code, state)
    body = {"error_code": code, "error_msg": answer.msg}
    if code.startswith("APIG"):  # only the gateway puts the id in the body
        body["request_id"] = request_id
    response = _json(answer.status, body, request_id)
    if answer.status == 429 and state.faults.retry_after is not None:
        response.headers["Retry-After"] = state.faults.retry_after
    return response


# Operations: (state, request, body) -> (status, JSON body or None).
_Result = tuple[int, dict[str, Any] | None]
_Operation = Callable[[SimState, web.Request, bytes], Awaitable[_Result]]


async def _show_asset_detail(state: SimState, request: web.Request, _: bytes) -> _Result:
    asset_id = request.query.get("asset_id", "")
    return 200, ops.show_asset_detail(state, asset_id, request.query.getall("categories", []))


async def _list_thumbnail_tasks(state: SimState, request: web.Request, _: bytes) -> _Result:
    limit = request.query.get("limit", "10")
    page = int(limit) if limit.isdigit() and 1 <= int(limit) <= 100 else 10
    return 200, ops.list_thumbnail_tasks(state, request.query.get("asset_id", ""), page)


async def _update_cover(state: SimState, _: web.Request, body: bytes) -> _Result:
    ops.update_cover(state, body)
    return 204, None


async def _create_process_task(state: SimState, _: web.Request, body: bytes) -> _Result:
    return 202, ops.create_process_task(state, body)


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
    """AK/SK signatures only (the daemon has no token mode); the call must name its
    project in X-Project-Id."""
    _verify_signature(state, request, body)
    if request.headers.get("X-Project-Id") != request.match_info["project_id"]:
        raise _Answer(401, "APIG.0301", "X-Project-Id does not match the request")


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
        raise _Answer(401, "APIG.0301", "access key locked after repeated failures")
    if verdict.problem is Problem.CLOCK_SKEW:
        raise _Answer(401, "APIG.0303", "X-Sdk-Date is more than 15 minutes off")
    if verdict.access_key is None:
        raise _Answer(401, "APIG.0301", "missing or malformed authentication")
    if verdict.problem is not None:
        state.signature_failed(verdict.access_key)
        raise _Answer(401, "APIG.0301", "signature verification failed")
    token_problem = _token_problem(state, verdict.access_key, verdict.signed_headers, request)
    if token_problem is not None:
        state.signature_failed(verdict.access_key)
        raise _Answer(401, "APIG.0301", token_problem)
    state.signature_passed(verdict.access_key)


def _token_problem(
    state: SimState, access_key: str, signed: Collection[str], request: web.Request
) -> str | None:
    """What is wrong with a signed request's security token, if anything: a temporary
    key needs its own, signed (else it could be swapped), and unexpired; a permanent key
    has none."""
    sent = request.headers.get(SECURITY_TOKEN_HEADER)
    temporary = state.temporary.get(access_key)
    if temporary is None:
        return None if sent is None else "a security token with a permanent access key"
    token, expires_at = temporary
    if sent is None or SECURITY_TOKEN_HEADER.lower() not in signed:
        return "a temporary access key needs its security token, signed"
    if not hmac.compare_digest(sent.encode(), token.encode()):
        return "the security token is not the access key's"
    if state.clock() >= expires_at:
        return "the temporary access key has expired"
    return None


def _gateway(state: SimState, request: web.Request, body: bytes, group: QuotaGroup) -> None:
    _authenticate(state, request, body)
    if state.gateway_refusal is not None:  # e.g. 403 APIG.0302: the user may not call VOD
        raise _Answer(*state.gateway_refusal)
    if request.match_info["project_id"] != state.project_id:
        raise _Answer(403, "VOD.10074", "no permission for this project")
    ops.quota(state, group)


def _endpoint(operation: str, group: QuotaGroup, run: _Operation) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[_STATE]
        request_id = uuid.uuid4().hex
        state.received[group].append(state.clock())
        body = await request.read()
        try:
            # The gateway answers as the request arrives; what is slow is behind it.
            _gateway(state, request, body, group)
        except _Answer as answer:
            state.calls[operation, _spelt(answer.code, state)] += 1
            return _error(state, answer, request_id)
        fault = await _network_faults(state, request)
        if fault == "reset":
            state.calls[operation, fault] += 1
            return web.Response()  # never written: the connection is gone
        try:
            ops.backend(state)
            status, payload = await run(state, request, body)
        except _Answer as answer:
            state.calls[operation, fault or _spelt(answer.code, state)] += 1
            return _error(state, answer, request_id)
        lost = group == "write" and state.rng.random() < state.faults.lost_answer_rate
        if lost and state.faults.lost_answer_status is not None:
            state.calls[operation, "lost"] += 1  # done, and the gateway says it failed
            timeout = _Answer(state.faults.lost_answer_status, "APIG.0202", "backend timeout")
            return _error(state, timeout, request_id)
        if lost and request.transport is not None:
            state.calls[operation, "lost"] += 1
            request.transport.abort()  # done, and nobody is told
            return web.Response()
        state.calls[operation, fault or "ok"] += 1
        if payload is None:
            return web.Response(status=status, headers={"X-Request-Id": request_id})
        return _json(status, payload, request_id)

    return handle


async def _subscribe(request: web.Request) -> web.Response:
    """SMN's subscribe_url: remembers the token it was called with."""
    request.app[_CONFIRMED].append(request.query.get("token", ""))
    return web.Response(text="subscription confirmed")


def make_app(state: SimState, confirmed: list[str] | None = None) -> web.Application:
    """The simulator as an aiohttp application; its snapshot tasks stop with it.
    ``confirmed`` collects the tokens of SMN subscription confirmations (GET on
    ``SUBSCRIBE_PATH``)."""
    app = web.Application()
    app[_STATE] = state
    app[_CONFIRMED] = confirmed if confirmed is not None else []
    app.router.add_get(SUBSCRIBE_PATH, _subscribe)
    prefix = "/v1.0/{project_id}/asset"
    app.router.add_get(
        f"{prefix}/details", _endpoint("show_asset_detail", "query", _show_asset_detail)
    )
    app.router.add_put(f"{prefix}/cover", _endpoint("update_cover", "write", _update_cover))
    app.router.add_get(
        "/v1/{project_id}/asset/thumbnails",
        _endpoint("list_thumbnail_tasks", "query", _list_thumbnail_tasks),
    )
    app.router.add_post(
        f"{prefix}/process", _endpoint("create_process_task", "write", _create_process_task)
    )

    async def close_state(_: web.Application) -> None:
        await state.close()

    app.on_cleanup.append(close_state)
    return app


@dataclass(frozen=True, slots=True)
class SimServer:
    """A running simulator: its base URL (the client's endpoint), how to stop it, and the
    tokens of the SMN subscriptions confirmed on it."""

    url: str
    stop: Callable[[], Awaitable[None]]
    confirmed: list[str]


async def run_simulator(host: str, port: int, state: SimState) -> SimServer:
    """Serve the simulator on ``host:port`` (port 0 picks a free one) until ``stop``."""
    # handler_cancellation: a client that gives up on a slow request ends its handler,
    # so stopping never waits out an injected timeout.
    confirmed: list[str] = []
    app = make_app(state, confirmed)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return SimServer(f"http://{bound_host}:{bound_port}", runner.cleanup, confirmed)
