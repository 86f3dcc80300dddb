"""Judging each rule application by the user's next edit of the item.

``reverted`` when the edit undoes the rule's effect, ``kept`` when it leaves it.
Only judged applications count towards ``success_rate``; a rule that falls below
``feedback.disable_below`` after ``feedback.min_judged`` judgements is disabled. A
rule the user reversed on an item never acts on that item again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from atlas.config import FeedbackSettings
from atlas.db.tables import rule_applications
from atlas.feedback.applications import (
    UNSET,
    Application,
)
from atlas.feedback.context import (
    normalise_genre,
)
from atlas.feedback.rule_store import score_rule
from atlas.media.tags import Tag

__all__ = [
    "Judgement",
    "judge_edit",
    "live_rule_effects",
    "settle",
]


# --- judging ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    application_id: int
    rule_id: int
    outcome: str  # kept | reverted
    #: Set when this judgement made the rule's success rate fall too low.
    disabled_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def live_rule_effects(connection: Connection, media_id: int) -> list[Tag]:
    """Predictions that live rule applications took off this item (for feedback rows)."""
    rows = connection.execute(
        select(rule_applications.c.before, rule_applications.c.after).where(
            rule_applications.c.media_id == media_id,
            rule_applications.c.target == "tags",
            rule_applications.c.outcome != "reverted",
        )
    )
    removed: dict[str, Tag] = {}
    for before, after in rows:
        kept = {tag["norm"] for tag in after.get("tags", [])}
        for tag in before.get("tags", []):
            if tag["norm"] not in kept:
                removed[tag["norm"]] = Tag.from_json(tag)
    return list(removed.values())


def judge_edit(
    connection: Connection,
    settings: FeedbackSettings,
    media_id: int,
    *,
    feedback_id: int,
    now: datetime,
    tags_final: Collection[str] | None = None,
    genre_final: Any = UNSET,
    moved: bool = False,
) -> list[Judgement]:
    """Judge the item's pending applications by the user's edit, in the edit's transaction.

    A tag edit (``tags_final``: the item's tag norms after it) judges tag
    applications: reverted when a tag the rule added is gone or one it removed is
    back, else kept. A genre edit (``genre_final``) judges genre applications. Any
    user edit judges a rule's move: reverted when the edit is a move (``moved``),
    kept otherwise. Updates each rule's counts and may disable it.
    """
    rows = connection.execute(
        select(rule_applications)
        .where(rule_applications.c.media_id == media_id, rule_applications.c.outcome == "pending")
        .order_by(rule_applications.c.id)
        .with_for_update()
    ).all()
    verdicts: list[tuple[Any, str]] = []
    for row in rows:
        application = Application.from_row(row)
        if application.target == "tags":
            if tags_final is None:
                continue
            final = set(tags_final)
            reverted = any(t.norm not in final for t in application.added_tags) or any(
                t.norm in final for t in application.removed_tags
            )
        elif application.target == "genre":
            if genre_final is UNSET:
                continue
            reverted = normalise_genre(genre_final) != normalise_genre(application.after["genre"])
        else:
            reverted = moved
        verdicts.append((row, "reverted" if reverted else "kept"))
    return settle(connection, settings, verdicts, feedback_id=feedback_id, now=now)


def settle(
    connection: Connection,
    settings: FeedbackSettings,
    verdicts: Sequence[tuple[Any, str]],
    *,
    feedback_id: int | None,
    now: datetime,
    undone: bool = False,
) -> list[Judgement]:
    per_rule: dict[int, Counter[str]] = {}
    for row, outcome in verdicts:
        values: dict[str, Any] = {"outcome": outcome, "judged_at": now, "judged_by": feedback_id}
        if undone:
            values["undone_at"] = now
        connection.execute(
            update(rule_applications).where(rule_applications.c.id == row.id).values(**values)
        )
        counts = per_rule.setdefault(row.rule_id, Counter())
        counts[outcome] += 1
        if row.outcome == "kept":  # an undo of a kept application: it was not a success
            counts["unkept"] += 1
    reasons = {
        rule_id: score_rule(
            connection,
            settings,
            rule_id,
            kept=counts["kept"] - counts["unkept"],
            reverted=counts["reverted"],
            now=now,
        )
        for rule_id, counts in per_rule.items()
    }
    return [
        Judgement(row.id, row.rule_id, outcome, reasons.get(row.rule_id))
        for row, outcome in verdicts
    ]
