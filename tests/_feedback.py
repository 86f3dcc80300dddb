"""Helpers shared by the feedback tests: items with predictions, a stand-in tagger, snapshots.

The real automatic tagger lands separately; these helpers store predictions the
way it will (source ``auto``) and call :func:`atlas.feedback.apply_rules` the way
it must.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, MetaData, delete, insert, select

from atlas.db import utcnow
from atlas.db.tables import media, media_tags, user_feedback
from atlas.feedback import RuleResult, apply_rules
from atlas.media.tags import Tag, upsert_tags


def add_item(
    engine: Engine,
    title: str,
    *,
    auto: Iterable[str] = (),
    user: Iterable[str] = (),
    genre: str | None = None,
    description: str | None = None,
    media_type: str = "video",
    path: str | None = None,
) -> int:
    """A media item with automatic (predicted) and user tags."""
    now = utcnow()
    with engine.begin() as connection:
        media_id = connection.execute(
            insert(media)
            .values(
                origin="file",
                media_type=media_type,
                title=title,
                genre=genre,
                description=description,
                path=path,
                created_at=now,
                updated_at=now,
            )
            .returning(media.c.id)
        ).scalar_one()
        upsert_tags(
            connection,
            media_id,
            [Tag(t, source="auto", confidence=0.5, explanation="predicted") for t in auto]
            + [Tag(t, source="user") for t in user],
        )
    return int(media_id)


def tag_new_item(engine: Engine, media_id: int, predictions: Iterable[str]) -> RuleResult:
    """What the tagger does with a new prediction set: rules, then store, in one transaction."""
    with engine.begin() as connection:
        result = apply_rules(
            connection,
            media_id,
            [Tag(t, source="auto", confidence=0.5, explanation="predicted") for t in predictions],
        )
        connection.execute(
            delete(media_tags).where(
                media_tags.c.media_id == media_id, media_tags.c.source == "auto"
            )
        )
        upsert_tags(connection, media_id, result.tags)
    return result


def tags_of(engine: Engine, media_id: int) -> dict[str, str]:
    """display tag -> source"""
    with engine.connect() as connection:
        rows = connection.execute(
            select(media_tags.c.tag, media_tags.c.source).where(media_tags.c.media_id == media_id)
        )
        return {tag: source for tag, source in rows}


def feedback_rows(engine: Engine, media_id: int | None = None) -> list[dict[str, Any]]:
    query = select(user_feedback).order_by(user_feedback.c.id)
    if media_id is not None:
        query = query.where(user_feedback.c.media_id == media_id)
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    for row in rows:
        for key in ("original_value", "corrected_value"):
            value = row[key]
            if isinstance(value, str) and value.startswith("{"):
                row[key] = json.loads(value)
    return rows


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table except the task bookkeeping (a run logs itself)."""
    reflected = MetaData()
    reflected.reflect(engine)
    result = {}
    with engine.connect() as connection:
        for name, table in sorted(reflected.tables.items()):
            if name in ("tasks", "task_logs", "alembic_version"):
                continue
            rows = connection.execute(select(table)).all()
            result[name] = sorted(tuple(map(repr, row)) for row in rows)
    return result
