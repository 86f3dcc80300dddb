"""Storage of transcripts: one row per media item, written as an upsert."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from atlas.db import database_errors, utcnow
from atlas.db.tables import transcripts
from atlas.media.words import refresh_words
from atlas.transcription.whisper import Transcript

__all__ = ["TranscriptSummary", "save_transcript", "transcript_summaries"]


@dataclass(frozen=True)
class TranscriptSummary:
    media_id: int
    source: str
    model: str | None
    language: str | None
    words: int
    content_hash: str | None


def save_transcript(
    engine: Engine, media_id: int, transcript: Transcript, content_hash: str | None
) -> None:
    """Insert or replace the transcript of ``media_id``, in one transaction.

    Idempotent: running it again with the same transcript leaves one row.
    """
    values: dict[str, Any] = {
        "text": transcript.text,
        "segments": [segment.to_dict() for segment in transcript.segments],
        "language": transcript.language,
        "language_probability": transcript.language_probability,
        "source": transcript.source,
        "model": transcript.model,
        "avg_logprob": transcript.avg_logprob,
        "audio_duration_s": transcript.audio_duration_s,
        "real_time_factor": _rounded(transcript.real_time_factor),
        "wall_time_s": transcript.wall_time_s,
        "device": transcript.device,
        "compute_type": transcript.compute_type,
        "content_hash": content_hash,
        "source_detail": transcript.source_detail,
        "created_at": utcnow(),
    }
    with database_errors(engine), engine.begin() as connection:
        _upsert(connection, media_id, values)
        refresh_words(connection, [media_id])


def _upsert(connection: Connection, media_id: int, values: dict[str, Any]) -> None:
    dialect = connection.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        lite = sqlite.insert(transcripts).values(media_id=media_id, **values)
        connection.execute(lite.on_conflict_do_update(index_elements=["media_id"], set_=values))
    elif dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg = postgresql.insert(transcripts).values(media_id=media_id, **values)
        connection.execute(pg.on_conflict_do_update(index_elements=["media_id"], set_=values))
    else:
        updated = connection.execute(
            update(transcripts).where(transcripts.c.media_id == media_id).values(**values)
        ).rowcount
        if not updated:
            connection.execute(insert(transcripts).values(media_id=media_id, **values))


def transcript_summaries(engine: Engine, media_ids: Sequence[int]) -> dict[int, TranscriptSummary]:
    """media id -> summary of its transcript, for the ids that have one."""
    found: dict[int, TranscriptSummary] = {}
    ids = list(media_ids)
    with database_errors(engine), engine.connect() as connection:
        for start in range(0, len(ids), 500):
            rows = connection.execute(
                select(
                    transcripts.c.media_id,
                    transcripts.c.source,
                    transcripts.c.model,
                    transcripts.c.language,
                    transcripts.c.text,
                    transcripts.c.content_hash,
                ).where(transcripts.c.media_id.in_(ids[start : start + 500]))
            )
            for row in rows:
                found[row.media_id] = TranscriptSummary(
                    media_id=row.media_id,
                    source=row.source,
                    model=row.model,
                    language=row.language,
                    words=len(row.text.split()),
                    content_hash=row.content_hash,
                )
    return found


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
