"""Typed bodies of the VOD calls this project makes (VOD_API.md section 2).

Response models ignore fields they do not name: VOD adds fields over time, and a new
one must not break the daemon. Only what the project reads is modelled.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AssetDetail",
    "BaseInfo",
    "CoverInfo",
    "ProcessTaskRequest",
    "ProcessTaskResponse",
    "Snapshot",
    "SnapshotKind",
    "ThumbnailInfo",
    "ThumbnailParams",
    "ThumbnailStatus",
    "UpdateCoverRequest",
]

SnapshotKind = Literal["sample", "dots", "quantity"]


class ThumbnailStatus(StrEnum):
    """The documented values of ``thumbnail_info.thumbnail_status``."""

    UN_THUMBNAIL = "UN_THUMBNAIL"
    THUMBNAILING = "THUMBNAILING"
    THUMBNAIL_SUCCEED = "THUMBNAIL_SUCCEED"
    THUMBNAIL_FAILED = "THUMBNAIL_FAILED"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Snapshot(_Model):
    offset: int = 0  # seconds into the video
    url: str


class CoverInfo(_Model):
    cover_url: str = ""


class BaseInfo(_Model):
    title: str | None = None
    cover_info_array: list[CoverInfo] = Field(default_factory=list)


class ThumbnailInfo(_Model):
    sample: list[Snapshot] = Field(default_factory=list)
    dots: list[Snapshot] = Field(default_factory=list)
    quantity: list[Snapshot] = Field(default_factory=list)
    # A plain string, not the enum: an undocumented status must not fail the whole answer.
    thumbnail_status: str | None = None
    exec_desc: str | None = None


class AssetDetail(_Model):
    """ShowAssetDetail's answer; ``thumbnail_info`` is absent until snapshots were taken."""

    asset_id: str
    base_info: BaseInfo | None = None
    thumbnail_info: ThumbnailInfo | None = None

    @property
    def cover_urls(self) -> list[str]:
        """The current cover URLs, blanks dropped."""
        if self.base_info is None:
            return []
        urls = (cover.cover_url.strip() for cover in self.base_info.cover_info_array)
        return [url for url in urls if url]

    def snapshots(self, kind: SnapshotKind) -> list[Snapshot]:
        """The snapshots of one kind (``sample``: by interval, ``dots``: at given
        seconds, ``quantity``: a count spread over the video)."""
        if self.thumbnail_info is None:
            return []
        snapshots: list[Snapshot] = getattr(self.thumbnail_info, kind)
        return snapshots


class UpdateCoverRequest(_Model):
    """UpdateCoverByThumbnail's body; the URL is trimmed (a docs example has spaces)."""

    model_config = ConfigDict(populate_by_name=True)

    thumbnail_url: str = Field(alias="thumbnailUrl", min_length=1)

    @field_validator("thumbnail_url", mode="before")
    @classmethod
    def _trim(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


class ThumbnailParams(_Model):
    """What snapshots to take: every ``time`` seconds, at ``dots``, or ``quantity`` of
    them; ``cover_position`` (1-based) picks the one that becomes the cover."""

    type: Literal["dots", "time", "quantity"]
    dots: list[int] | None = None
    time: int | None = Field(default=None, ge=1)
    quantity: int | None = Field(default=None, ge=1, le=10)
    cover_position: int | None = Field(default=None, ge=1)
    format: int | None = None  # 1 = jpg
    aspect_ratio: int | None = None  # 0 keep, 1 16:9
    max_length: int | None = None

    @model_validator(mode="after")
    def _type_has_its_value(self) -> Self:
        if getattr(self, self.type) in (None, []):
            raise ValueError(f"thumbnail type {self.type!r} needs a {self.type!r} value")
        return self


class ProcessTaskRequest(_Model):
    """CreateAssetProcessTask's body: new snapshots of an existing asset."""

    asset_id: str = Field(min_length=1)
    thumbnail: ThumbnailParams


class ProcessTaskResponse(_Model):
    asset_id: str
    thumbnail_task_id: str
