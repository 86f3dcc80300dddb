"""What a rule did to an item: the ``rule_applications`` rows, recorded and counted.

Every change a rule makes is an :class:`Application` (rule, item, before, after,
time) with outcome ``pending``, and the rule's ``usage_count`` grows; the user's
next edit judges it (:mod:`atlas.feedback.judging`), and it can be undone
(:mod:`atlas.feedback.undo`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, insert, select, update

from atlas.db.tables import learning_rules, rule_applications
from atlas.feedback.context import (
    MediaContext,
    chunked,
)
from atlas.feedback.engine import (
    TagEffect,
)
from atlas.media.tags import Tag

__all__ = [
    "UNSET",
    "Application",
    "RuleResult",
    "application_state",
    "count_usage",
    "insert_application",
    "record_tag_effects",
    "state_json",
]

#: "Not given" (``None`` is a genre: none).
UNSET: Any = object()


@dataclass(frozen=True)
class Application:
    """One change one rule made to one item."""

    id: int | None
    rule_id: int | None
    media_id: int
    target: str  # tags | genre | path
    before: dict[str, Any]
    after: dict[str, Any]
    via: str
    outcome: str = "pending"
    applied_at: datetime | None = None
    judged_at: datetime | None = None
    undone_at: datetime | None = None
    title: str | None = None

    @property
    def removed_tags(self) -> list[Tag]:
        after = {tag["norm"] for tag in self.after.get("tags", [])}
        return [Tag.from_json(t) for t in self.before.get("tags", []) if t["norm"] not in after]

    @property
    def added_tags(self) -> list[Tag]:
        before = {tag["norm"] for tag in self.before.get("tags", [])}
        return [Tag.from_json(t) for t in self.after.get("tags", []) if t["norm"] not in before]

    def summary(self) -> str:
        """The change in a few words: ``- sci-fi, + science fiction``."""
        if self.target == "tags":
            parts = [f"- {t.tag}" for t in self.removed_tags]
            parts += [f"+ {t.tag}" for t in self.added_tags]
            return ", ".join(parts)
        if self.target == "genre":
            return f"genre {self.before.get('genre')!r} -> {self.after.get('genre')!r}"
        return f"move {self.before.get('path')} -> {self.after.get('path')}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "media_id": self.media_id,
            "title": self.title,
            "target": self.target,
            "change": self.summary(),
            "before": self.before,
            "after": self.after,
            "via": self.via,
            "outcome": self.outcome,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "judged_at": self.judged_at.isoformat() if self.judged_at else None,
            "undone_at": self.undone_at.isoformat() if self.undone_at else None,
        }

    @classmethod
    def from_row(cls, row: Any, title: str | None = None) -> Application:
        return cls(
            id=row.id,
            rule_id=row.rule_id,
            media_id=row.media_id,
            target=row.target,
            before=row.before,
            after=row.after,
            via=row.via,
            outcome=row.outcome,
            applied_at=row.applied_at,
            judged_at=row.judged_at,
            undone_at=row.undone_at,
            title=title,
        )


class RuleResult(NamedTuple):
    """What :func:`apply_rules` returns: the tags to store, and the applications recorded."""

    tags: list[Tag]
    applications: list[Application]


def state_json(state: Tag) -> dict[str, Any]:
    return {**state.to_json(), "explanation": state.explanation}


def application_state(
    connection: Connection, media_ids: Sequence[int]
) -> tuple[dict[tuple[int, int], int], dict[int, set[int]]]:
    """(live applications by (media, rule), rules reversed per media)."""
    live: dict[tuple[int, int], int] = {}
    blocked: dict[int, set[int]] = {}
    for chunk in chunked(list(media_ids)):
        rows = connection.execute(
            select(
                rule_applications.c.id,
                rule_applications.c.media_id,
                rule_applications.c.rule_id,
                rule_applications.c.outcome,
            ).where(rule_applications.c.media_id.in_(chunk))
        )
        for row in rows:
            if row.outcome == "reverted":
                blocked.setdefault(row.media_id, set()).add(row.rule_id)
            else:
                live[(row.media_id, row.rule_id)] = row.id
    return live, blocked


def record_tag_effects(
    connection: Connection | None,
    context: MediaContext,
    effects: Sequence[TagEffect],
    live: dict[tuple[int, int], int],
    *,
    via: str,
    now: datetime,
) -> list[Application]:
    """Application rows for the effects (``connection`` None: plan only, a dry run)."""
    recorded = []
    usage: Counter[int] = Counter()
    for effect in effects:
        rule_id = effect.rule.id
        if rule_id is not None and (context.media_id, rule_id) in live:
            continue
        application = Application(
            id=None,
            rule_id=rule_id,
            media_id=context.media_id,
            target="tags",
            before={"tags": [state_json(s) for s in effect.removed]},
            after={"tags": [state_json(s) for s in effect.added]},
            via=via,
            applied_at=now,
            title=context.title,
        )
        if connection is not None and rule_id is not None:
            application = insert_application(connection, application)
            live[(context.media_id, rule_id)] = application.id or 0
            usage[rule_id] += 1
        recorded.append(application)
    if connection is not None:
        count_usage(connection, usage)
    return recorded


def insert_application(connection: Connection, application: Application) -> Application:
    new_id = connection.execute(
        insert(rule_applications)
        .values(
            rule_id=application.rule_id,
            media_id=application.media_id,
            target=application.target,
            before=application.before,
            after=application.after,
            via=application.via,
            applied_at=application.applied_at,
            outcome="pending",
        )
        .returning(rule_applications.c.id)
    ).scalar_one()
    return Application(**{**application.__dict__, "id": int(new_id)})


def count_usage(connection: Connection, usage: Counter[int]) -> None:
    for rule_id, count in usage.items():
        connection.execute(
            update(learning_rules)
            .where(learning_rules.c.id == rule_id)
            .values(usage_count=func.coalesce(learning_rules.c.usage_count, 0) + count)
        )
