"""What was already produced: SMN and MFS deliver at least once, and a delivery whose
answer was lost (or late) comes again. Keys (an SMN ``message_id``, an MFS body's digest)
are remembered for a window, at most ``max_entries`` of them, oldest forgotten first;
per process, so two replicas may each produce a repeat once."""

from __future__ import annotations

from collections import OrderedDict

from consumer.clock import SYSTEM_CLOCK, Clock

__all__ = ["Seen"]


class Seen:
    def __init__(self, window: float, max_entries: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self._window = window
        self._max = max_entries
        self._clock = clock
        self._until: OrderedDict[str, float] = OrderedDict()  # key -> forgotten at (monotonic)

    def __contains__(self, key: str) -> bool:
        self._forget_expired()
        return key in self._until

    def __len__(self) -> int:
        return len(self._until)

    def add(self, key: str) -> None:
        self._until[key] = self._clock.monotonic() + self._window
        self._until.move_to_end(key)
        while len(self._until) > self._max:
            self._until.popitem(last=False)

    def _forget_expired(self) -> None:
        now = self._clock.monotonic()
        until = self._until
        while until:
            key, at = next(iter(until.items()))
            if at > now:
                return
            del until[key]
