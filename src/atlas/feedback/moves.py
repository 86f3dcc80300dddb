"""``atlas media move``: the user moves a file within the library; recorded as feedback.

The file (and its sidecars) is moved first, then the new path, the ``file_move``
feedback row and the judgement of pending rule applications are committed in one
transaction; if that commit fails the files are moved back. A refused move
(outside the library, onto an existing file, ...) touches nothing and records
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from atlas.config import FeedbackSettings
from atlas.db import database_errors, utcnow
from atlas.feedback.judging import Judgement, judge_edit
from atlas.feedback.records import insert_feedback
from atlas.feedback.tracking import check_confidence
from atlas.media.files import moving, plan_move, store_move

__all__ = ["MoveReport", "move_media"]


@dataclass(frozen=True)
class MoveReport:
    media_id: int
    source: str
    target: str
    sidecars: list[list[str]]
    feedback_id: int
    judged: list[Judgement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "media_id": self.media_id,
            "source": self.source,
            "target": self.target,
            "sidecars": self.sidecars,
            "feedback_id": self.feedback_id,
            "judged": [judgement.to_dict() for judgement in self.judged],
        }


def move_media(
    engine: Engine,
    settings: FeedbackSettings,
    media_id: int,
    destination: Path | str,
    *,
    confidence: float = 1.0,
) -> MoveReport:
    """Move an item's file to ``destination`` (a folder, or a new file name) inside the library.

    Raises ``NotFound``, ``InvalidInput`` or ``Conflict`` (see
    :func:`atlas.media.files.plan_move`) before touching anything.
    """
    confidence = check_confidence(confidence)
    with database_errors(engine), engine.connect() as connection:
        plan = plan_move(connection, media_id, destination)
    now = utcnow()
    with database_errors(engine), moving(plan), engine.begin() as connection:
        store_move(connection, plan)
        feedback_id = insert_feedback(
            connection,
            media_id,
            "file_move",
            str(plan.source),
            str(plan.target),
            confidence=confidence,
            source="user",
            now=now,
        )
        judged = judge_edit(
            connection, settings, media_id, feedback_id=feedback_id, now=now, moved=True
        )
    return MoveReport(
        media_id=media_id,
        source=str(plan.source),
        target=str(plan.target),
        sidecars=[[str(old), str(new)] for old, new in plan.sidecars],
        feedback_id=feedback_id,
        judged=judged,
    )
