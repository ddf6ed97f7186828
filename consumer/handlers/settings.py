"""The ``covers`` settings section: options of the built-in cover handlers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CoverSettings"]

SnapshotKind = Literal["sample", "dots", "quantity"]


class CoverSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # regenerate_head_frame: check for the new cover this long after asking (seconds,
    # through the retry tiers), this many times, then hand over to the next handler.
    regenerate_check_delay: Annotated[float, Field(gt=0)] = 120.0
    regenerate_attempts: Annotated[int, Field(ge=1)] = 2
    # fallback_cover: snapshot kinds in order of preference; offsets under
    # min_offset_seconds are skipped (first frames are often black).
    snapshot_preference: tuple[SnapshotKind, ...] = ("sample", "dots", "quantity")
    min_offset_seconds: Annotated[float, Field(ge=0)] = 1.0
    # With no snapshots and none coming: ask VOD for these offsets (seconds), retry after.
    snapshot_offsets: tuple[Annotated[int, Field(ge=0)], ...] = (1, 5, 10)
    snapshot_retry_after: Annotated[float, Field(gt=0)] = 60.0
