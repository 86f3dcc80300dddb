"""Reading back the user's corrections: the ``user_feedback`` rows, newest first."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from atlas.db import check_id, database_errors
from atlas.db.tables import FEEDBACK_TYPES, user_feedback
from atlas.errors import InvalidInput

__all__ = ["FeedbackRow", "list_feedback"]

#: The most rows one call returns.
MAX_FEEDBACK_ROWS = 1000


@dataclass(frozen=True)
class FeedbackRow:
    """One recorded correction; values stored as JSON come back as data."""

    id: int
    media_id: int
    feedback_type: str
    original_value: Any
    corrected_value: Any
    confidence_score: float | None
    timestamp: datetime
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def list_feedback(
    engine: Engine,
    *,
    media_id: int | None = None,
    feedback_type: str | None = None,
    limit: int = 50,
) -> list[FeedbackRow]:
    """The latest feedback rows (of one item, of one type), newest first.

    Raises ``InvalidInput`` for a bad page length or type; an unknown media id
    has no rows.
    """
    if not 1 <= limit <= MAX_FEEDBACK_ROWS:
        raise InvalidInput(f"the page length (limit) must be between 1 and {MAX_FEEDBACK_ROWS}")
    if feedback_type is not None and feedback_type not in FEEDBACK_TYPES:
        raise InvalidInput(
            f"unknown feedback type {feedback_type!r}; use one of {', '.join(FEEDBACK_TYPES)}"
        )
    query = select(user_feedback).order_by(user_feedback.c.id.desc()).limit(limit)
    if media_id is not None:
        query = query.where(user_feedback.c.media_id == check_id(media_id))
    if feedback_type is not None:
        query = query.where(user_feedback.c.feedback_type == feedback_type)
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        FeedbackRow(
            id=row.id,
            media_id=row.media_id,
            feedback_type=row.feedback_type,
            original_value=_value(row.original_value),
            corrected_value=_value(row.corrected_value),
            confidence_score=row.confidence_score,
            timestamp=row.timestamp,
            source=row.source,
        )
        for row in rows
    ]
