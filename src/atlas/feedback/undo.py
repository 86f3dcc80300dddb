"""Undoing one rule application: the item as it was, made the user's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from atlas.config import FeedbackSettings
from atlas.db import check_id, database_errors, utcnow
from atlas.db.tables import media, rule_applications
from atlas.errors import Conflict, NotFound
from atlas.feedback.applications import (
    Application,
)
from atlas.feedback.context import (
    current_tags,
    normalise_genre,
)
from atlas.feedback.judging import settle
from atlas.feedback.records import insert_feedback, reject_tags, tag_values
from atlas.media.files import moving, plan_move, store_move
from atlas.media.tags import Tag, remove_tags, upsert_tags

__all__ = [
    "UndoReport",
    "undo_application",
]


# --- undo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UndoReport:
    application: Application
    feedback_id: int | None
    disabled_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "application": self.application.to_dict(),
            "feedback_id": self.feedback_id,
            "disabled_reason": self.disabled_reason,
        }


def undo_application(engine: Engine, settings: FeedbackSettings, application_id: int) -> UndoReport:
    """Restore the item as it was before the application, if it has not changed since.

    What is restored becomes the user's (tags with source ``user``, a genre or a
    location the user chose), so no other rule changes it back; tags the rule
    added are rejected on this item. Counts as the user reversing the rule (a
    failure). Raises ``NotFound`` for an unknown id and ``Conflict``, changing
    nothing, when the application was already reversed or the item has changed
    since (the message says what changed).
    """
    now = utcnow()
    with database_errors(engine), engine.connect() as connection:
        row = _application_row(connection, application_id)
    if row.target == "path":
        return _undo_move(engine, settings, row, now)
    with database_errors(engine), engine.begin() as connection:
        row = _application_row(connection, application_id, for_update=True)
        application = Application.from_row(row)
        label = f"rule {row.rule_id}"
        if row.target == "tags":
            feedback_id = _undo_tags(connection, application, label, now)
        else:
            current = connection.scalar(select(media.c.genre).where(media.c.id == row.media_id))
            if normalise_genre(current) != normalise_genre(application.after["genre"]):
                raise Conflict(
                    f"media {row.media_id} has changed since {label} was applied: its genre is "
                    f"now {current!r}; nothing was undone"
                )
            connection.execute(
                update(media)
                .where(media.c.id == row.media_id)
                .values(genre=application.before["genre"], updated_at=now)
            )
            feedback_id = insert_feedback(
                connection,
                row.media_id,
                "metadata_edit",
                {"field": "genre", "value": current},
                {"field": "genre", "value": application.before["genre"]},
                confidence=1.0,
                source="undo",
                now=now,
            )
        judged = settle(
            connection, settings, [(row, "reverted")], feedback_id=feedback_id, now=now, undone=True
        )
        updated = Application.from_row(_application_row_any(connection, application_id))
    return UndoReport(updated, feedback_id, judged[0].disabled_reason)


def _application_row(
    connection: Connection, application_id: int, *, for_update: bool = False
) -> Any:
    check_id(application_id, "rule application", hint="see: atlas rules applications")
    query = select(rule_applications).where(rule_applications.c.id == application_id)
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(
            f"no rule application with id {application_id}; see: atlas rules applications"
        )
    if row.outcome == "reverted":
        how = "undone" if row.undone_at is not None else "reversed by the user's edit"
        raise Conflict(f"application {application_id} was already {how}; nothing to undo")
    return row


def _undo_tags(connection: Connection, application: Application, label: str, now: datetime) -> int:
    media_id = application.media_id
    current = current_tags(connection, media_id)
    for state in application.added_tags:
        holder = current.get(state.norm)
        if holder is None or holder.source != "rule":
            change = "is gone" if holder is None else f"is now set by source {holder.source!r}"
            raise Conflict(
                f"media {media_id} has changed since {label} was applied: tag '{state.tag}' "
                f"{change}; nothing was undone"
            )
    for state in application.removed_tags:
        if state.norm in current:
            raise Conflict(
                f"media {media_id} has changed since {label} was applied: tag '{state.tag}' is "
                "back; nothing was undone"
            )
    added = application.added_tags
    restored = application.removed_tags
    remove_tags(connection, media_id, [s.norm for s in added], sources=["rule"])
    # The user asked for these back: they are the user's now, so no other rule
    # takes them away again (as an undone genre or move is the user's too).
    upsert_tags(
        connection,
        media_id,
        [Tag(s.tag, kind=s.kind, source="user", explanation="restored by undo") for s in restored],
    )
    after = {**{n: s for n, s in current.items() if n not in {a.norm for a in added}}}
    after.update({s.norm: s for s in restored})
    original, corrected = tag_values(
        current,
        [s.tag for s in after.values()],
        added=[s.tag for s in restored],
        removed=[s.tag for s in added],
        confirmed=[],
        scope="undo",
        rule_removed=restored,
    )
    feedback_id = insert_feedback(
        connection,
        media_id,
        "tag_correction",
        original,
        corrected,
        confidence=1.0,
        source="undo",
        now=now,
    )
    reject_tags(connection, media_id, added, feedback_id=feedback_id, now=now)
    return feedback_id


def _undo_move(engine: Engine, settings: FeedbackSettings, row: Any, now: datetime) -> UndoReport:
    application = Application.from_row(row)
    label = f"rule {row.rule_id}"
    with engine.connect() as connection:
        current = connection.scalar(select(media.c.path).where(media.c.id == row.media_id))
        if current != application.after["path"]:
            raise Conflict(
                f"media {row.media_id} has changed since {label} was applied: its file is now at "
                f"{current}; nothing was undone"
            )
        plan = plan_move(connection, row.media_id, application.before["path"])
    with moving(plan), engine.begin() as connection:
        locked = _application_row(connection, row.id, for_update=True)
        store_move(connection, plan)
        feedback_id = insert_feedback(
            connection,
            row.media_id,
            "file_move",
            str(plan.source),
            str(plan.target),
            confidence=1.0,
            source="undo",
            now=now,
        )
        judged = settle(
            connection,
            settings,
            [(locked, "reverted")],
            feedback_id=feedback_id,
            now=now,
            undone=True,
        )
        updated = Application.from_row(_application_row_any(connection, row.id))
    return UndoReport(updated, feedback_id, judged[0].disabled_reason)


def _application_row_any(connection: Connection, application_id: int) -> Any:
    return connection.execute(
        select(rule_applications).where(rule_applications.c.id == application_id)
    ).one()
