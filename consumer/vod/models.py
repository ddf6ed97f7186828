"""Typed bodies of the VOD calls this project makes (VOD_API.md section 2).

Response models ignore fields they do not name: VOD adds fields over time, and a new
one must not break the daemon. Only what the project reads is modelled, and as leniently
as the official SDK reads it: ``null`` for a list or a string reads as empty, offsets may
be fractional, ``thumbnail_task_id`` may be missing (single-snapshot tasks have none).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

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
    "ThumbnailTask",
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


def _empty_if_null(empty: Any) -> BeforeValidator:
    return BeforeValidator(lambda value: empty if value is None else value)


class Snapshot(_Model):
    offset: float = 0  # seconds into the video
    url: str


_Snapshots = Annotated[list[Snapshot], _empty_if_null([])]


class CoverInfo(_Model):
    cover_url: Annotated[str, _empty_if_null("")] = ""


class MetaData(_Model):
    duration: float | None = None  # seconds


class BaseInfo(_Model):
    title: str | None = None
    meta_data: MetaData | None = None
    cover_info_array: Annotated[list[CoverInfo], _empty_if_null([])] = Field(default_factory=list)


class ThumbnailInfo(_Model):
    sample: _Snapshots = Field(default_factory=list)
    dots: _Snapshots = Field(default_factory=list)
    quantity: _Snapshots = Field(default_factory=list)
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

    @property
    def duration(self) -> float | None:
        """The video's length in seconds, when VOD says."""
        if self.base_info is None or self.base_info.meta_data is None:
            return None
        return self.base_info.meta_data.duration

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
    """A 202: the task is accepted. Only multi-snapshot tasks get an id back (the SDK
    marks it optional): a missing one is no error."""

    asset_id: str
    thumbnail_task_id: str | None = None


class _TaskParams(_Model):
    """What a listed task was asked for; read loosely: it only tells tasks apart."""

    type: str | None = None
    dots: Annotated[list[float], _empty_if_null([])] = Field(default_factory=list)


class ThumbnailTask(_Model):
    """One snapshot task of an asset, as ListThumbnailInfo shows it (the SDK's
    QueryThumbnailInfo): VOD's record that a task was started, whatever came of it."""

    task_id: str | None = None  # optional in the SDK's QueryThumbnailInfo, as all its fields
    thumbnail_para: _TaskParams | None = None
    thumbnail_count: int | None = None

    @property
    def is_head_frame(self) -> bool:
        """One snapshot at second 0 made the cover: what regeneration asks for."""
        para = self.thumbnail_para
        return para is not None and para.type == "dots" and para.dots == [0]


#: Tasks asked for per ListThumbnailInfo page: VOD lists 10 unless told, at most 100.
TASK_PAGE = 100


class ThumbnailTasks(_Model):
    total: int = 0
    thumbnails: Annotated[list[ThumbnailTask], _empty_if_null([])] = Field(default_factory=list)
