"""The SQL side of embeddings: documents from the library, and what is embedded.

``media_embeddings`` holds one row per media item and model, written only after
the vector store accepted the vector (see :mod:`atlas.embeddings.embed`). Reads
here are bulk reads, so checking a whole library for changes costs a few
queries, not one per item.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from atlas.db import utcnow
from atlas.db.tables import media, media_embeddings, media_tags, transcripts
from atlas.embeddings.document import DocumentInput, MediaDocument, build_document
from atlas.media.tags import SOURCE_RANK, Tag

__all__ = [
    "EmbeddingRecord",
    "RecordedEmbedding",
    "chunks",
    "existing_media_ids",
    "forget_embeddings",
    "load_document_inputs",
    "load_documents",
    "load_tags",
    "record_embeddings",
    "recorded_embeddings",
    "upsert",
]

_CHUNK = 500
_DOCUMENT_COLUMNS = (
    media.c.id,
    media.c.media_type,
    media.c.title,
    media.c.year,
    media.c.artist,
    media.c.genre,
    media.c.description,
    media.c.duration_s,
    media.c.runtime_min,
    media.c.container,
    media.c.video_codec,
    media.c.audio_codec,
    media.c.width,
    media.c.height,
    media.c.has_subtitles,
    media.c.container_tags,
)


@dataclass(frozen=True)
class RecordedEmbedding:
    media_id: int
    doc_hash: str
    dimension: int
    collection: str


@dataclass(frozen=True)
class EmbeddingRecord:
    """A vector the store has accepted, to be recorded."""

    media_id: int
    model: str
    dimension: int
    collection: str
    doc_hash: str
    doc_chars: int
    #: The vector as float32 bytes (``None``: not kept in the database).
    vector: bytes | None = None


def chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def load_document_inputs(
    connection: Connection, media_ids: Sequence[int] | None = None
) -> dict[int, DocumentInput]:
    """What the documents of these media items (``None``: every item) are made of."""
    rows: list[Any] = []
    tag_rows: list[Any] = []
    transcript_rows: list[Any] = []
    tag_columns = (
        media_tags.c.media_id,
        media_tags.c.tag,
        media_tags.c.kind,
        media_tags.c.source,
        media_tags.c.confidence,
    )
    if media_ids is None:
        rows = list(connection.execute(select(*_DOCUMENT_COLUMNS)))
        tag_rows = list(connection.execute(select(*tag_columns)))
        transcript_rows = list(
            connection.execute(select(transcripts.c.media_id, transcripts.c.text))
        )
    else:
        for part in chunks(sorted(set(media_ids))):
            rows += connection.execute(select(*_DOCUMENT_COLUMNS).where(media.c.id.in_(part))).all()
            tag_rows += connection.execute(
                select(*tag_columns).where(media_tags.c.media_id.in_(part))
            ).all()
            transcript_rows += connection.execute(
                select(transcripts.c.media_id, transcripts.c.text).where(
                    transcripts.c.media_id.in_(part)
                )
            ).all()

    tags: dict[int, list[Tag]] = {}
    for row in tag_rows:
        tags.setdefault(row.media_id, []).append(
            Tag(tag=row.tag, kind=row.kind, source=row.source, confidence=row.confidence)
        )
    texts = {row.media_id: row.text for row in transcript_rows}
    return {
        row.id: DocumentInput(
            media_type=row.media_type,
            title=row.title,
            year=row.year,
            artist=row.artist,
            genre=row.genre,
            description=row.description,
            tags=tuple(tags.get(row.id, ())),
            transcript=texts.get(row.id),
            duration_s=row.duration_s,
            runtime_min=row.runtime_min,
            container=row.container,
            video_codec=row.video_codec,
            audio_codec=row.audio_codec,
            width=row.width,
            height=row.height,
            has_subtitles=bool(row.has_subtitles),
            container_tags=row.container_tags,
        )
        for row in rows
    }


def load_documents(
    connection: Connection, media_ids: Sequence[int] | None = None
) -> dict[int, MediaDocument]:
    """The embedding documents of these media items (``None``: every item), by id."""
    return {
        media_id: build_document(item)
        for media_id, item in load_document_inputs(connection, media_ids).items()
    }


#: Built once: every search and "more like this" reads the tags of its hits.
_TAGS = select(
    media_tags.c.media_id,
    media_tags.c.tag,
    media_tags.c.tag_norm,
    media_tags.c.kind,
    media_tags.c.source,
    media_tags.c.confidence,
).where(media_tags.c.media_id.in_(bindparam("ids", expanding=True)))


def load_tags(connection: Connection, media_ids: Sequence[int]) -> dict[int, list[Tag]]:
    """Tags of many media items, strongest source first, then by confidence and name.

    The same order as ``tags_by_media``, reading only the columns a tag needs
    (search reads tags on every query), in chunks the database accepts.
    """
    result: dict[int, list[Tag]] = {media_id: [] for media_id in media_ids}
    rows: list[Any] = []
    for part in chunks(sorted(set(media_ids))):
        rows += connection.execute(_TAGS, {"ids": list(part)}).all()
    rank = SOURCE_RANK
    rows.sort(key=lambda row: (-rank[row[4]], -row[5], row[2]))
    for media_id, tag, tag_norm, kind, source, confidence in rows:
        result[media_id].append(Tag(tag, kind, source, confidence, None, tag_norm))
    return result


def recorded_embeddings(
    connection: Connection, model: str, media_ids: Sequence[int] | None = None
) -> dict[int, RecordedEmbedding]:
    """What ``media_embeddings`` says is in the vector store for ``model``."""
    columns = (
        media_embeddings.c.media_id,
        media_embeddings.c.doc_hash,
        media_embeddings.c.dimension,
        media_embeddings.c.collection,
    )
    query = select(*columns).where(media_embeddings.c.model == model)
    rows: list[Any] = []
    if media_ids is None:
        rows = list(connection.execute(query))
    else:
        for part in chunks(sorted(set(media_ids))):
            rows += connection.execute(query.where(media_embeddings.c.media_id.in_(part))).all()
    return {
        row.media_id: RecordedEmbedding(row.media_id, row.doc_hash, row.dimension, row.collection)
        for row in rows
    }


def existing_media_ids(connection: Connection, media_ids: Iterable[int]) -> set[int]:
    found: set[int] = set()
    for part in chunks(sorted(set(media_ids))):
        found.update(connection.execute(select(media.c.id).where(media.c.id.in_(part))).scalars())
    return found


def upsert(connection: Connection, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """Insert rows, or update the row with the same ``keys``; SQLite and PostgreSQL."""
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    updates = {name: statement.excluded[name] for name in rows[0] if name not in keys}
    connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), rows)


def record_embeddings(engine: Engine, records: Sequence[EmbeddingRecord]) -> int:
    """Record accepted vectors in one transaction; idempotent. Returns rows written.

    Media deleted in the meantime are skipped (their vectors are pruned by the
    next ``embed-media --all``).
    """
    if not records:
        return 0
    now = utcnow()
    with engine.begin() as connection:
        alive = existing_media_ids(connection, [record.media_id for record in records])
        rows = [
            {
                "media_id": record.media_id,
                "model": record.model,
                "dimension": record.dimension,
                "collection": record.collection,
                "doc_hash": record.doc_hash,
                "doc_chars": record.doc_chars,
                "embedded_at": now,
                "vector": record.vector,
            }
            for record in records
            if record.media_id in alive
        ]
        for part in chunks(rows):
            upsert(connection, media_embeddings, list(part), ["media_id", "model"])
    return len(rows)


def forget_embeddings(engine: Engine, model: str, media_ids: Sequence[int]) -> None:
    """Delete the records of these media items' vectors for ``model``, in one transaction."""
    if not media_ids:
        return
    with engine.begin() as connection:
        for part in chunks(sorted(set(media_ids))):
            connection.execute(
                delete(media_embeddings).where(
                    media_embeddings.c.model == model, media_embeddings.c.media_id.in_(part)
                )
            )
