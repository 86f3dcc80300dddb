"""Reading the library: media records, their tags, sidecars and transcripts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from atlas.db import check_id, database_errors
from atlas.db.tables import media, media_sidecars, transcripts
from atlas.errors import InvalidInput, NotFound
from atlas.media.tags import Tag, tags_by_media

__all__ = ["MediaDetail", "MediaPage", "MediaRecord", "get_media", "list_media", "media_detail"]


@dataclass(frozen=True)
class MediaRecord:
    id: int
    path: str | None
    origin: str
    media_type: str
    title: str | None
    content_hash: str | None = None
    size_bytes: int | None = None
    mtime: float | None = None
    duration_s: float | None = None
    container: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    bitrate: int | None = None
    has_video: bool = False
    has_audio: bool = False
    has_subtitles: bool = False
    streams: list[dict[str, Any]] | None = None
    container_tags: dict[str, str] | None = None
    artist: str | None = None
    genre: str | None = None
    description: str | None = None
    year: int | None = None
    runtime_min: float | None = None
    rating: float | None = None
    external_id: str | None = None
    missing: bool = False
    duplicate_of: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    probed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> MediaRecord:
        mapping = row._mapping
        return cls(**{f.name: mapping[f.name] for f in fields(cls) if f.name in mapping})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MediaDetail:
    media: MediaRecord
    tags: list[Tag] = field(default_factory=list)
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    transcript: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.media.to_dict(),
            "tags": [asdict(tag) for tag in self.tags],
            "sidecars": self.sidecars,
            "transcript": self.transcript,
        }


@dataclass(frozen=True)
class MediaPage:
    items: list[MediaRecord]
    tags: dict[int, list[Tag]]
    total: int


def _fetch(connection: Connection, media_id: int) -> MediaRecord:
    check_id(media_id)
    row = connection.execute(select(media).where(media.c.id == media_id)).first()
    if row is None:
        raise NotFound(f"no media with id {media_id}")
    return MediaRecord.from_row(row)


def get_media(engine: Engine, media_id: int) -> MediaRecord:
    """One media record; raises ``NotFound``."""
    with database_errors(engine), engine.connect() as connection:
        return _fetch(connection, media_id)


def media_detail(engine: Engine, media_id: int) -> MediaDetail:
    """A media record with its tags, sidecars and transcript summary; raises ``NotFound``."""
    with database_errors(engine), engine.connect() as connection:
        record = _fetch(connection, media_id)
        tags = tags_by_media(connection, [media_id])[media_id]
        sidecars = [
            {"path": row.path, "kind": row.kind, "format": row.format, "language": row.language}
            for row in connection.execute(
                select(media_sidecars)
                .where(media_sidecars.c.media_id == media_id)
                .order_by(media_sidecars.c.path)
            )
        ]
        transcript_row = connection.execute(
            select(transcripts).where(transcripts.c.media_id == media_id)
        ).first()
    transcript = None
    if transcript_row is not None:
        transcript = {
            "source": transcript_row.source,
            "language": transcript_row.language,
            "model": transcript_row.model,
            "text": transcript_row.text,
        }
    return MediaDetail(media=record, tags=tags, sidecars=sidecars, transcript=transcript)


def list_media(
    engine: Engine,
    *,
    media_type: str | None = None,
    limit: int = 50,
    offset: int = 0,
    include_missing: bool = True,
) -> MediaPage:
    """A page of media records in id order, with their tags."""
    if limit < 1:
        raise InvalidInput("--limit must be at least 1")
    if offset < 0:
        raise InvalidInput("--offset cannot be negative")
    conditions = []
    if media_type is not None:
        conditions.append(media.c.media_type == media_type)
    if not include_missing:
        conditions.append(media.c.missing.is_(False))
    with database_errors(engine), engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(media).where(*conditions))
        rows = connection.execute(
            select(media).where(*conditions).order_by(media.c.id).limit(limit).offset(offset)
        ).all()
        items = [MediaRecord.from_row(row) for row in rows]
        tags = tags_by_media(connection, [item.id for item in items])
    return MediaPage(items=items, tags=tags, total=int(total or 0))
