"""Built-in ``log`` handler: records the event on its outcome line, no side effect."""

from __future__ import annotations

from consumer.events import CoverComplete, Event, ThumbnailComplete
from consumer.handlers.context import Context
from consumer.outcomes import DONE, Outcome


async def log(event: Event, ctx: Context) -> Outcome:
    if isinstance(event, CoverComplete):
        info = event.cover_info
        ctx.annotate(status=info.status, cover_type=info.cover_type, error_code=info.error_code)
    elif isinstance(event, ThumbnailComplete):
        ctx.annotate(status=event.thumbnail_info.status)
    return DONE
