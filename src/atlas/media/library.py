"""Reading the library: media records, their tags, sidecars and transcripts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, exists, func, select

from atlas.db import check_id, database_errors
from atlas.db.tables import (
    clusters,
    library_roots,
    media,
    media_clusters,
    media_sidecars,
    media_tags,
    transcripts,
)
from atlas.errors import InvalidInput, NotFound
from atlas.media.tags import Tag, normalise_tag, tags_by_media

__all__ = [
    "MEDIA_SORTS",
    "MediaDetail",
    "MediaPage",
    "MediaRecord",
    "Transcript",
    "cluster_names",
    "get_media",
    "library_root_paths",
    "list_media",
    "media_detail",
    "media_transcript",
]

#: The orders a page of media can be listed in.
MEDIA_SORTS = ("id", "title", "year", "rating", "added")
_SORT_COLUMNS = {
    "id": media.c.id,
    "title": media.c.title,
    "year": media.c.year,
    "rating": media.c.rating,
    "added": media.c.created_at,
}


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
    genre: str | None = None,
    tag: str | None = None,
    cluster: int | None = None,
    title: str | None = None,
    sort: str = "id",
    descending: bool = False,
) -> MediaPage:
    """A page of media records with their tags, filtered and sorted (then by id).

    ``genre`` matches the genre case-insensitively, ``tag`` any tag of the item
    (normalised), ``cluster`` its cluster in the latest clustering, ``title`` a
    part of the title. Raises ``InvalidInput`` for a bad page or order.
    """
    if limit < 1:
        raise InvalidInput("the page length (limit) must be at least 1")
    if offset < 0:
        raise InvalidInput("the offset cannot be negative")
    if sort not in _SORT_COLUMNS:
        raise InvalidInput(f"unknown order {sort!r}; use one of {', '.join(MEDIA_SORTS)}")
    conditions: list[Any] = []
    if media_type is not None:
        conditions.append(media.c.media_type == media_type)
    if not include_missing:
        conditions.append(media.c.missing.is_(False))
    if genre:
        conditions.append(func.lower(media.c.genre) == genre.strip().lower())
    if title:
        conditions.append(
            func.lower(media.c.title).contains(title.strip().lower(), autoescape=True)
        )
    if tag:
        conditions.append(
            exists().where(
                media_tags.c.media_id == media.c.id, media_tags.c.tag_norm == normalise_tag(tag)
            )
        )
    if cluster is not None:
        conditions.append(
            exists().where(
                media_clusters.c.media_id == media.c.id, media_clusters.c.cluster == cluster
            )
        )
    column = _SORT_COLUMNS[sort]
    # Items without the value come last either way (PostgreSQL would put them first).
    order = [(column.desc() if descending else column.asc()).nulls_last()]
    if sort != "id":
        order.append(media.c.id.desc() if descending else media.c.id.asc())
    with database_errors(engine), engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(media).where(*conditions))
        rows = connection.execute(
            select(media).where(*conditions).order_by(*order).limit(limit).offset(offset)
        ).all()
        items = [MediaRecord.from_row(row) for row in rows]
        tags = tags_by_media(connection, [item.id for item in items])
    return MediaPage(items=items, tags=tags, total=int(total or 0))


@dataclass(frozen=True)
class Transcript:
    """An item's transcript with its timed segments (``start``, ``end``, ``text``)."""

    media_id: int
    text: str
    segments: list[dict[str, Any]]
    language: str | None
    source: str
    model: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def media_transcript(engine: Engine, media_id: int) -> Transcript:
    """The transcript of one item; ``NotFound`` for an unknown item or one not transcribed."""
    with database_errors(engine), engine.connect() as connection:
        _fetch(connection, media_id)
        row = connection.execute(
            select(transcripts).where(transcripts.c.media_id == media_id)
        ).first()
    if row is None:
        raise NotFound(f"media {media_id} has no transcript yet")
    segments = [
        {
            "start": float(segment.get("start") or 0.0),
            "end": float(segment.get("end") or 0.0),
            "text": str(segment.get("text") or "").strip(),
        }
        for segment in (row.segments or [])
        if isinstance(segment, dict)
    ]
    return Transcript(
        media_id=media_id,
        text=row.text,
        segments=segments,
        language=row.language,
        source=row.source,
        model=row.model,
    )


def cluster_names(engine: Engine) -> dict[int, str]:
    """The clusters of the latest clustering (any model), number to name."""
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(clusters.c.cluster, clusters.c.name).order_by(clusters.c.cluster)
        ).all()
    return {row.cluster: row.name for row in rows}


def library_root_paths(engine: Engine) -> list[str]:
    """The folders given to ingest (files are served and moved only inside them)."""
    with database_errors(engine), engine.connect() as connection:
        return list(
            connection.execute(select(library_roots.c.path).order_by(library_roots.c.path))
            .scalars()
            .all()
        )
