"""The handler interface, and how a handler is found by name.

A handler is any async callable ``(event, ctx) -> Outcome``. A route names its
handlers by one of:

- a built-in name (``log``);
- a name registered by an installed package in the entry-point group
  ``cover_consumer.handlers``;
- an import path ``package.module:attr``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol

from consumer.errors import HandlerNotFound
from consumer.outcomes import Outcome

if TYPE_CHECKING:
    from consumer.events import Event
    from consumer.handlers.context import Context

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "NEEDS_VOD", "Handler", "resolve"]

ENTRY_POINT_GROUP = "cover_consumer.handlers"


class Handler(Protocol):
    async def __call__(self, event: Event, ctx: Context, /) -> Outcome: ...


# Import paths, not objects: loading the config or the CLI must not load the VOD client.
BUILTINS: dict[str, str] = {
    "log": "consumer.handlers.log:log",
    "regenerate_head_frame": "consumer.handlers.covers:regenerate_head_frame",
    "fallback_cover": "consumer.handlers.covers:fallback_cover",
    "fallback_on_thumbnails": "consumer.handlers.covers:fallback_on_thumbnails",
}
#: Built-ins that call VOD: a route naming one needs the ``vod`` settings.
NEEDS_VOD = frozenset({"regenerate_head_frame", "fallback_cover", "fallback_on_thumbnails"})


def resolve(name: str) -> Handler:
    """Find the handler a route names; raise :class:`HandlerNotFound` if there is none."""
    if name in BUILTINS:
        return _checked(name, _import(BUILTINS[name]))
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
    if not _is_async(target):
        # Its call would return a plain value, not an awaitable: every event would fail.
        raise HandlerNotFound(f"handler {name!r}: not async (define it with 'async def')")
    handler: Callable[..., object] = target
    return handler  # type: ignore[return-value]  # shape checked at call time by the runner


def _is_async(target: Callable[..., object]) -> bool:
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    # An instance whose class defines ``async def __call__``.
    return not inspect.isfunction(target) and inspect.iscoroutinefunction(type(target).__call__)
