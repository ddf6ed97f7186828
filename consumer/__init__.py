"""cover-consumer: keeps Huawei Cloud VOD video covers healthy from a Kafka stream of VOD events.

The public surface for handler authors: events, outcomes and the handler context.
"""

from consumer.events import CoverComplete, Event, OtherEvent, ThumbnailComplete
from consumer.handlers import Context, Handler
from consumer.outcomes import DONE, Done, Failed, Handover, Outcome, Skipped

__all__ = [
    "DONE",
    "Context",
    "CoverComplete",
    "Done",
    "Event",
    "Failed",
    "Handler",
    "Handover",
    "OtherEvent",
    "Outcome",
    "Skipped",
    "ThumbnailComplete",
]
