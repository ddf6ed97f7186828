"""consumer.vod.client against what may stand in front of VOD and answer in its place (a
proxy, a load balancer, a captive portal), over real HTTP: every answer classified, none
followed elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from consumer.vod.client import VodClient, vod_session
from consumer.vod.errors import VodError, VodPermanentError, VodSystemicError
from consumer.vod.models import ProcessTaskRequest, ThumbnailParams

PROJECT, AK, SK, TOKEN = "proj-1", "AK-EDGE", "sk-edge", "security-token-edge"
Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Recorder:
    """An HTTP server that answers every request with ``answer`` and keeps what it got."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.answer: Answer = self._empty
        self.url = ""

    async def _empty(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        return await self.answer(request)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Recorder, Recorder]]:
    """Two servers: the configured VOD endpoint, and somewhere else."""
    recorders, runners = (Recorder(), Recorder()), []
    for recorder in recorders:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", recorder.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        recorder.url = f"http://{host}:{port}"
        runners.append(runner)
    yield recorders
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def client(servers: tuple[Recorder, Recorder]) -> AsyncIterator[VodClient]:
    async with vod_session(4) as session:
        yield VodClient(
            session,
            endpoint=servers[0].url,
            project_id=PROJECT,
            access_key=AK,
            secret_key=SK,
            security_token=TOKEN,
            timeout=2.0,
        )


def task() -> ProcessTaskRequest:
    return ProcessTaskRequest(asset_id="a1", thumbnail=ThumbnailParams(type="dots", dots=[0]))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_never_followed_neither_the_write_nor_its_token_go_elsewhere(
    servers: tuple[Recorder, Recorder], client: VodClient, status: int
) -> None:
    # The official SDK does not follow redirects (HttpConfig.allow_redirects=False): a
    # 307/308 would send the billed task request again, to wherever Location says, with
    # the security token, and a second request on one quota token.
    endpoint, elsewhere = servers

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": f"{elsewhere.url}/steal"})

    endpoint.answer = redirect

    with pytest.raises(VodError) as caught:
        await client.create_process_task(task())
    with pytest.raises(VodError):
        await client.show_asset_detail("a1")

    assert caught.value.status == status
    assert not caught.value.retryable  # never sent blindly again
    assert [method for method, _, _ in endpoint.requests] == ["POST", "GET"]
    assert elsewhere.requests == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, VodPermanentError), (401, VodSystemicError), (403, VodSystemicError)],
)
@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1"])
async def test_an_error_body_nested_past_any_parser_is_classified_by_its_status(
    servers: tuple[Recorder, Recorder],
    client: VodClient,
    status: int,
    expected: type[VodError],
    body: bytes,
) -> None:
    async def deep(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type="application/json")

    servers[0].answer = deep

    with pytest.raises(expected) as caught:
        await client.show_asset_detail("a1")

    assert (caught.value.status, caught.value.error_code) == (status, None)
