"""Handlers: what an event is for. A handler is any async callable ``(event, ctx) -> Outcome``.

registry.py  finding a handler by name: built-ins (registered as ``module:attr`` strings,
             imported on first use), entry points, import paths
context.py   what a handler gets besides the event: ``Context``, ``Clients``, ``RecordMeta``
log.py       the built-in ``log`` handler
covers.py    the built-in VOD cover handlers
"""

from consumer.handlers.context import Clients, Context, RecordMeta
from consumer.handlers.registry import Handler, resolve

__all__ = ["Clients", "Context", "Handler", "RecordMeta", "resolve"]
