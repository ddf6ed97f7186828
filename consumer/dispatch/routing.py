"""Which handlers an event goes to: an ordered list of routes, first match wins."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from consumer.config import MatchSpec, RouteSpec, Settings
from consumer.errors import ConfigError
from consumer.events import COVER_TYPES, EVENT_TYPES, STATUSES, Event
from consumer.handlers.registry import NEEDS_VOD, Handler, resolve

__all__ = ["LOG_ROUTES", "VOD_ROUTES", "Route", "Router", "Step", "effective_routes", "routes_for"]

# Unknown event types and cover types match none of these, so they are skipped with a reason.
LOG_ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        match=MatchSpec(event_type="coverComplete", cover_type="HEAD_FRAME_COVER"),
        handlers=["log"],
    ),
    RouteSpec(match=MatchSpec(event_type="thumbnailComplete"), handlers=["log"]),
)
#: With VOD configured: repair failed first-frame covers, use new snapshots at once.
VOD_ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        match=MatchSpec(event_type="coverComplete", status="FAILED", cover_type="HEAD_FRAME_COVER"),
        handlers=["regenerate_head_frame", "fallback_cover"],
    ),
    RouteSpec(
        match=MatchSpec(
            event_type="coverComplete", status="SUCCEED", cover_type="HEAD_FRAME_COVER"
        ),
        handlers=["log"],
    ),
    RouteSpec(match=MatchSpec(event_type="thumbnailComplete"), handlers=["fallback_on_thumbnails"]),
)


def effective_routes(settings: Settings) -> Sequence[RouteSpec]:
    """The routes in force: the configured ones, else the defaults for whether VOD is set."""
    if settings.routes is not None:
        return settings.routes
    return VOD_ROUTES if settings.vod.endpoint is not None else LOG_ROUTES


def routes_for(settings: Settings) -> Router:
    """The configured routes, else the defaults for whether VOD is configured. What would
    silently never match (a misspelt event type, status or cover type), a handler that
    cannot be found or is not async, and a VOD handler without VOD settings are config
    errors, found at start-up."""
    vod = settings.vod.endpoint is not None
    specs = effective_routes(settings)
    for index, spec in enumerate(specs):
        _check_match(f"routes.{index}.match", spec.match)
    router = Router.from_specs(specs)
    if not vod:
        for index, route in enumerate(router.routes):
            for step in route.steps:
                if step.name in NEEDS_VOD:
                    raise ConfigError(f"routes.{index}: handler {step.name!r} needs vod.endpoint")
    return router


def _check_match(path: str, match: MatchSpec) -> None:
    for field, known in (
        ("event_type", EVENT_TYPES),
        ("status", STATUSES),
        ("cover_type", COVER_TYPES),
    ):
        value = getattr(match, field)
        if value is None or value.lower() in {name.lower() for name in known}:
            continue
        close = difflib.get_close_matches(value.lower(), [k.lower() for k in known], n=1)
        hint = next((f"; did you mean {k}?" for k in known if close and k.lower() == close[0]), "")
        raise ConfigError(
            f"{path}.{field}: {value!r} never matches (known: {', '.join(known)}){hint}"
        )


_Signature = tuple[str, str | None, str | None]
# Known shapes number a handful; a flood of made-up event types must not grow the cache
# for ever, so past this size it starts again. Values longer than any VOD name are
# matched but never remembered: a sender must not choose how much memory the cache holds
# (150 records with 800 KB event types once held 120 MB here).
_CACHE_LIMIT = 1024
_CACHEABLE_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    handler: Handler


@dataclass(frozen=True, slots=True)
class Route:
    """A match (``None`` = any; compared case-insensitively) and the handlers it runs in order."""

    event_type: str | None
    status: str | None
    cover_type: str | None
    steps: tuple[Step, ...]

    def matches(self, signature: _Signature) -> bool:
        event_type, status, cover_type = signature
        return (
            (self.event_type is None or self.event_type == event_type)
            and (self.status is None or self.status == status)
            and (self.cover_type is None or self.cover_type == cover_type)
        )


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        # Events take few distinct (type, status, cover type) shapes: match each shape once.
        self._cache: dict[_Signature, Route | None] = {}

    @classmethod
    def from_specs(
        cls,
        specs: Sequence[RouteSpec] | None,
        resolve_handler: Callable[[str], Handler] = resolve,
        defaults: Sequence[RouteSpec] = LOG_ROUTES,
    ) -> Router:
        """Build from config (``None`` = the default routes); every handler is resolved now,
        so a typo fails at start-up rather than on the first matching event."""
        return cls(
            [
                Route(
                    event_type=_folded(spec.match.event_type),
                    status=_folded(spec.match.status),
                    cover_type=_folded(spec.match.cover_type),
                    steps=tuple(Step(name, resolve_handler(name)) for name in spec.handlers),
                )
                for spec in (defaults if specs is None else specs)
            ]
        )

    def route(self, event: Event) -> Route | None:
        shape = (event.event_type, event.status, event.cover_type)
        try:
            return self._cache[shape]
        except KeyError:
            pass
        signature = (shape[0].lower(), _folded(shape[1]), _folded(shape[2]))
        found = next((r for r in self.routes if r.matches(signature)), None)
        if any(value is not None and len(value) > _CACHEABLE_LENGTH for value in shape):
            return found
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[shape] = found
        return found


def _folded(value: str | None) -> str | None:
    return value.lower() if value is not None else None
