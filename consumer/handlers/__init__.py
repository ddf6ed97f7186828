"""The handler interface, and how a handler is found by name.

A handler is any async callable ``(event, ctx) -> Outcome``. A route names its
handlers by one of:

- a built-in name (``log``);
- a name registered by an installed package in the entry-point group
  ``cover_consumer.handlers``;
- an import path ``package.module:attr``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol

from consumer.errors import HandlerNotFound
from consumer.events import Event
from consumer.handlers.context import Clients, Context, RecordMeta
from consumer.handlers.covers import fallback_cover, fallback_on_thumbnails, regenerate_head_frame
from consumer.handlers.log import log
from consumer.outcomes import Outcome

__all__ = ["BUILTINS", "NEEDS_VOD", "Clients", "Context", "Handler", "RecordMeta", "resolve"]

ENTRY_POINT_GROUP = "cover_consumer.handlers"


class Handler(Protocol):
    async def __call__(self, event: Event, ctx: Context, /) -> Outcome: ...


BUILTINS: dict[str, Handler] = {
    "log": log,
    "regenerate_head_frame": regenerate_head_frame,
    "fallback_cover": fallback_cover,
    "fallback_on_thumbnails": fallback_on_thumbnails,
}
#: Built-ins that call VOD: a route naming one needs the ``vod`` settings.
NEEDS_VOD = frozenset({"regenerate_head_frame", "fallback_cover", "fallback_on_thumbnails"})


def resolve(name: str) -> Handler:
    """Find the handler a route names; raise :class:`HandlerNotFound` if there is none."""
    if name in BUILTINS:
        return BUILTINS[name]
    if ":" in name:
        return _checked(name, _import(name))
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            return _checked(name, ep.load())
        except Exception as exc:  # a broken plugin is a config problem, not a crash
            raise HandlerNotFound(
                f"handler {name!r}: entry point {ep.value!r} fails: {exc}"
            ) from None
    raise HandlerNotFound(
        f"handler {name!r}: not a built-in ({', '.join(sorted(BUILTINS))}), "
        f"not in entry-point group {ENTRY_POINT_GROUP!r}, and not a 'package.module:attr' path"
    )


def _import(path: str) -> object:
    module_name, _, attr = path.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as exc:  # also "", "..relative"
        raise HandlerNotFound(f"handler {path!r}: cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerNotFound(f"handler {path!r}: {module_name!r} has no {attr!r}") from None
    return target


def _checked(name: str, target: object) -> Handler:
    if not callable(target):
        raise HandlerNotFound(f"handler {name!r}: {target!r} is not callable")
    handler: Callable[..., object] = target
    return handler  # type: ignore[return-value]  # shape checked at call time by the runner
