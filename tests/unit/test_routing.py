"""consumer.dispatch.routing and handler resolution: first match wins, names resolve at
start-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.config import MatchSpec, RouteSpec, Settings
from consumer.dispatch.routing import Router, routes_for
from consumer.errors import ConfigError, HandlerNotFound
from consumer.events import Event, decode
from consumer.handlers import Context, Handler, resolve
from consumer.handlers.log import log
from consumer.handlers.registry import BUILTINS
from consumer.outcomes import DONE, Outcome
from tests.fakes import cover_event, some_handler, thumbnail_event

HANDLER_PATH = f"{some_handler.__module__}:some_handler"


async def first(event: Event, ctx: Context) -> Outcome:
    return DONE


async def second(event: Event, ctx: Context) -> Outcome:
    return DONE


HANDLERS: dict[str, Handler] = {"first": first, "second": second}


def route(
    event_type: str | None = None, status: str | None = None, cover_type: str | None = None
) -> RouteSpec:
    """A route to ``first``; ``second`` is only ever used as a catch-all behind it."""
    match = MatchSpec(event_type=event_type, status=status, cover_type=cover_type)
    return RouteSpec(match=match, handlers=["first"])


CATCH_ALL = RouteSpec(match=MatchSpec(), handlers=["second"])


def router(*specs: RouteSpec) -> Router:
    return Router.from_specs(specs, resolve_handler=HANDLERS.__getitem__)


def handler_names(router: Router, value: bytes) -> list[str] | None:
    found = router.route(decode(value))
    return None if found is None else [step.name for step in found.steps]


TRANSCODE = json.dumps(
    {"event_type": "transcodeComplete", "transcode_info": {"asset_id": "a", "status": "SUCCEED"}}
).encode()


# -- matching ----------------------------------------------------------------------------


def test_first_matching_route_wins() -> None:
    routes = router(route(event_type="coverComplete"), CATCH_ALL)

    assert handler_names(routes, cover_event("a")) == ["first"]


def test_a_later_route_takes_what_earlier_ones_do_not_match() -> None:
    routes = router(route(event_type="coverComplete", status="SUCCEED"), CATCH_ALL)

    assert handler_names(routes, cover_event("a", status="FAILED")) == ["second"]


@pytest.mark.parametrize("value", [cover_event("a"), thumbnail_event("t"), TRANSCODE])
def test_a_match_of_all_none_matches_any_event(value: bytes) -> None:
    assert handler_names(router(CATCH_ALL), value) == ["second"]


@pytest.mark.parametrize(
    "spec",
    [
        route(event_type="COVERCOMPLETE"),
        route(event_type="CoverComplete", status="failed"),
        route(cover_type="head_frame_cover"),
        route(event_type="covercomplete", status="Failed", cover_type="Head_Frame_Cover"),
    ],
)
def test_matching_is_case_insensitive(spec: RouteSpec) -> None:
    assert handler_names(router(spec), cover_event("a", status="FAILED")) == ["first"]


def test_an_event_no_route_matches_has_no_route() -> None:
    routes = router(route(event_type="coverComplete", status="SUCCEED"))

    assert handler_names(routes, cover_event("a", status="FAILED")) is None


def test_the_same_event_shape_routes_the_same_way_again() -> None:
    routes = router(route(event_type="coverComplete", status="FAILED"), CATCH_ALL)

    assert handler_names(routes, cover_event("a")) == ["first"]
    assert handler_names(routes, cover_event("b")) == ["first"]
    assert handler_names(routes, cover_event("c", status="SUCCEED")) == ["second"]


def test_a_flood_of_made_up_event_types_keeps_the_route_cache_bounded() -> None:
    routes = router(route(event_type="coverComplete"), CATCH_ALL)

    for n in range(5000):
        body = {"event_type": f"madeUp{n}", "made_up_info": {"asset_id": "a"}}
        assert handler_names(routes, json.dumps(body).encode()) == ["second"]

    assert len(routes._cache) <= 1024
    assert handler_names(routes, cover_event("a")) == ["first"]


def test_a_huge_made_up_event_type_is_routed_but_never_kept_in_the_cache() -> None:
    routes = router(route(event_type="coverComplete"), CATCH_ALL)
    body = {"event_type": "x" * 800_000, "made_up_info": {"asset_id": "a"}}

    assert handler_names(routes, json.dumps(body).encode()) == ["second"]
    assert all(len(shape[0]) <= 64 for shape in routes._cache)


# -- default routes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [cover_event("a"), cover_event("a", status="SUCCEED"), thumbnail_event("t")],
    ids=["cover-failed", "cover-succeed", "thumbnail"],
)
def test_default_routes_send_documented_events_to_the_log_handler(value: bytes) -> None:
    found = Router.from_specs(None).route(decode(value))

    assert found is not None
    assert [(step.name, step.handler) for step in found.steps] == [("log", log)]


@pytest.mark.parametrize(
    "value",
    [cover_event("a", cover_type="LAST_FRAME_COVER"), TRANSCODE],
    ids=["unknown-cover-type", "unknown-event-type"],
)
def test_default_routes_do_not_match_unknown_cover_or_event_types(value: bytes) -> None:
    assert Router.from_specs(None).route(decode(value)) is None


# -- resolving handler names -------------------------------------------------------------


def test_resolve_finds_the_builtin_log_handler() -> None:
    assert BUILTINS["log"] == "consumer.handlers.log:log"
    assert resolve("log") is log


def test_resolve_imports_a_module_attr_path() -> None:
    assert resolve(HANDLER_PATH) is some_handler


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("no-such-handler", "not a built-in (fallback_cover, fallback_on_thumbnails, log,"),
        ("tests.no_such_module:handler", "cannot import 'tests.no_such_module'"),
        (f"{some_handler.__module__}:missing", "has no 'missing'"),
        (f"{some_handler.__module__}:NOT_CALLABLE", "is not callable"),
    ],
    ids=["unknown-name", "no-module", "no-attr", "not-callable"],
)
def test_resolve_fails_with_a_message_naming_the_handler_and_the_problem(
    name: str, says: str
) -> None:
    with pytest.raises(HandlerNotFound) as info:
        resolve(name)

    assert repr(name) in str(info.value)
    assert says in str(info.value)


def test_unknown_name_message_lists_every_way_to_name_a_handler() -> None:
    with pytest.raises(HandlerNotFound) as info:
        resolve("no-such-handler")

    message = str(info.value)
    assert ", log, " in message
    assert "'cover_consumer.handlers'" in message
    assert "'package.module:attr'" in message


@pytest.mark.parametrize("name", [":some_handler", "..fakes:some_handler"])
def test_resolve_rejects_a_path_without_a_module_as_handler_not_found(name: str) -> None:
    with pytest.raises(HandlerNotFound):
        resolve(name)


def test_resolve_finds_a_handler_registered_in_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[cover_consumer.handlers]\nmine = {HANDLER_PATH}\n")
    monkeypatch.syspath_prepend(tmp_path)

    assert resolve("mine") is some_handler


def test_router_from_specs_fails_at_construction_on_an_unknown_handler() -> None:
    specs = [RouteSpec(match=MatchSpec(), handlers=["log", "no-such-handler"])]

    with pytest.raises(HandlerNotFound, match="no-such-handler"):
        Router.from_specs(specs)


def test_with_vod_configured_failed_first_frame_covers_go_to_regeneration_then_fallback() -> None:
    vod = {
        "endpoint": "https://vod.example",
        "project_id": "p",
        "access_key": "ak",
        "secret_key": "sk",
    }
    router = routes_for(Settings(vod=vod))

    route = router.route(decode(cover_event("a1", status="FAILED")))

    assert route is not None
    assert [step.name for step in route.steps] == ["regenerate_head_frame", "fallback_cover"]


def test_a_cover_handler_routed_without_vod_settings_is_a_config_error() -> None:
    routes = [{"match": {}, "handlers": ["log"]}, {"match": {}, "handlers": ["fallback_cover"]}]

    with pytest.raises(ConfigError, match=r"routes\.1: handler 'fallback_cover' needs vod"):
        routes_for(Settings(routes=routes))
