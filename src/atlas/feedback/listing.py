"""Listing rule applications, and one rule with its recent applications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from atlas.db import check_id, database_errors
from atlas.db.tables import media, rule_applications
from atlas.feedback.applications import (
    Application,
)
from atlas.feedback.rule_store import get_rule
from atlas.feedback.rules import Rule

__all__ = [
    "RuleDetail",
    "list_applications",
    "rule_detail",
]


# --- listing ---------------------------------------------------------------------------------


def list_applications(
    engine: Engine,
    *,
    rule_id: int | None = None,
    media_id: int | None = None,
    outcome: str | None = None,
    limit: int = 50,
) -> list[Application]:
    """Recorded applications, newest first; raises ``NotFound`` for an unknown rule."""
    conditions = []
    if rule_id is not None:
        conditions.append(rule_applications.c.rule_id == rule_id)
    if media_id is not None:
        check_id(media_id)
        conditions.append(rule_applications.c.media_id == media_id)
    if outcome is not None:
        conditions.append(rule_applications.c.outcome == outcome)
    with database_errors(engine), engine.connect() as connection:
        if rule_id is not None:
            get_rule(connection, rule_id)
        rows = connection.execute(
            select(rule_applications, media.c.title)
            .join(media, media.c.id == rule_applications.c.media_id)
            .where(*conditions)
            .order_by(rule_applications.c.id.desc())
            .limit(limit)
        ).all()
    return [Application.from_row(row, title=row.title) for row in rows]


@dataclass(frozen=True)
class RuleDetail:
    rule: Rule
    applications: list[Application]

    def to_dict(self) -> dict[str, Any]:
        return {**self.rule.to_dict(), "applications": [a.to_dict() for a in self.applications]}


def rule_detail(engine: Engine, rule_id: int, *, limit: int = 20) -> RuleDetail:
    """One rule and its latest applications; raises ``NotFound``."""
    with database_errors(engine), engine.connect() as connection:
        rule = get_rule(connection, rule_id)
    return RuleDetail(rule, list_applications(engine, rule_id=rule_id, limit=limit))
