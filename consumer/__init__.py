"""cover-consumer: keeps Huawei Cloud VOD video covers healthy from a Kafka stream of VOD events.

The public surface for handler authors: events, outcomes, errors and the handler context.
Events and the context load on first use, so importing a part of the package (the offset
tracker, say) does not load pydantic, aiohttp or the VOD client.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from consumer.errors import ConsumerError, TransientError
from consumer.outcomes import DONE, Done, Failed, Handover, Outcome, Retry, Skipped

if TYPE_CHECKING:
    from consumer.events import CoverComplete, Event, OtherEvent, ThumbnailComplete
    from consumer.handlers import Clients, Context, Handler, RecordMeta

__all__ = [
    "DONE",
    "Clients",
    "ConsumerError",
    "Context",
    "CoverComplete",
    "Done",
    "Event",
    "Failed",
    "Handler",
    "Handover",
    "OtherEvent",
    "Outcome",
    "RecordMeta",
    "Retry",
    "Skipped",
    "ThumbnailComplete",
    "TransientError",
]

_LAZY = {
    "CoverComplete": "consumer.events",
    "Event": "consumer.events",
    "OtherEvent": "consumer.events",
    "ThumbnailComplete": "consumer.events",
    "Clients": "consumer.handlers",
    "Context": "consumer.handlers",
    "Handler": "consumer.handlers",
    "RecordMeta": "consumer.handlers",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'consumer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def _version() -> str:
    try:
        return importlib.metadata.version("cover-consumer")
    except importlib.metadata.PackageNotFoundError:  # a checkout that is not installed
        return "unknown"


def __dir__() -> list[str]:
    return sorted(__all__)
