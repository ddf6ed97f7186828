"""Reading record batches aiokafka's decoder refuses, instead of failing every fetch.

aiokafka decodes header keys as strict UTF-8. One record with a binary header key makes
each fetch of its partition raise ``UnicodeDecodeError``; the daemon could never read past
it, and the records after it in the same batch could never be read at all.

:func:`install` puts :class:`LenientMemoryRecords` in aiokafka's fetcher in place of its
``MemoryRecords``: batches are still read by aiokafka's fast decoder, record by record;
a batch it refuses is read again by aiokafka's pure-Python decoder, with header keys
decoded with ``surrogateescape``. The record then arrives like any other, its key's raw
bytes recoverable (``key.encode("utf-8", "surrogateescape")``), and the dispatch layer
dead-letters it. aiokafka's own unpacking skips records it already handed out (offsets
below its next fetch offset), so reading a batch again repeats nothing.

This relies on aiokafka internals (``fetcher.MemoryRecords``, the pure-Python batch
classes); ``tests/broker/test_hostile_records.py`` fails if an upgrade breaks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, SupportsIndex

from aiokafka.consumer import fetcher
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import _MemoryRecordsPy

__all__ = ["LenientMemoryRecords", "install"]

_MAGIC_OFFSET = 16  # where a batch's format version sits (the same in v0, v1 and v2)


def install() -> None:
    """Make every aiokafka consumer of this process read batches leniently (idempotent)."""
    fetcher.MemoryRecords = LenientMemoryRecords


class LenientMemoryRecords(_MemoryRecordsPy):  # type: ignore[misc]  # subclassing Any
    """aiokafka's pure-Python batch splitter (cheap: per batch), handing out v2 batches that
    fall back to a lenient decoder."""

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        raw = self._next_slice
        batch = super().next_batch(*args, **kwargs)
        if batch is None or raw is None or raw[_MAGIC_OFFSET] < 2:
            return batch  # legacy formats carry no headers
        return _LenientBatch(batch, raw)


class _LenientBatch:
    """aiokafka's fast batch, read again leniently when it refuses a record."""

    __slots__ = ("_batch", "_raw")

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)  # offsets, producer, control flags, CRC check

    def __next__(self) -> Any:
        return next(self._batch)  # how aiokafka reads a control batch's marker

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._batch
        except UnicodeDecodeError:
            yield from _LenientRecordBatch(self._raw)


class _LenientRecordBatch(_DefaultRecordBatchPy):  # type: ignore[misc]
    """aiokafka's pure-Python v2 batch, decoding header keys with ``surrogateescape``."""

    def __init__(self, buffer: memoryview) -> None:
        super().__init__(buffer)
        self._buffer: bytearray = _LenientBuffer(self._buffer)

    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        if not isinstance(self._buffer, _LenientBuffer):  # decompression made a new one
            self._buffer = _LenientBuffer(self._buffer)


class _LenientBuffer(bytearray):
    """The decoder slices header keys out of its buffer and decodes them: slices of this
    buffer decode without failing."""

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        item = super().__getitem__(index)
        return _LenientBytes(item) if isinstance(index, slice) else item


class _LenientBytes(bytes):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes.decode(self, encoding, "surrogateescape")
