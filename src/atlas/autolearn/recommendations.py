"""Stored recommendations: made from insights, listed, dismissed, judged, and their history.

Status: ``new`` (proposed), ``applied``, ``dismissed`` (by the user), or
``superseded`` (its insight changed or went away before it was applied).
A kind of recommendation whose applied ones keep failing their judgement
(``BLOCK_AFTER`` judged, at least ``BLOCK_SHARE`` failed) stops being proposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from atlas.autolearn.actions import (
    SAFE_ACTIONS,
    action_data_key,
    describe_action,
    measure_action,
)
from atlas.autolearn.coverage import CoverageState
from atlas.autolearn.insights import Insight
from atlas.config import Settings
from atlas.db import check_id, database_errors, utcnow
from atlas.db.tables import autolearn_recommendations as recs
from atlas.db.tables import tasks
from atlas.errors import Conflict, NotFound

__all__ = [
    "BLOCK_AFTER",
    "Recommendation",
    "SyncReport",
    "blocked_kinds",
    "dismiss_recommendation",
    "get_recommendation",
    "judge_applied",
    "list_recommendations",
    "sync_recommendations",
]

BLOCK_AFTER = 3
BLOCK_SHARE = 2 / 3
#: A set-retries recommendation is judged once this many runs followed it.
JUDGE_MIN_RUNS = 20
#: A queueing action kept its promise when at most this share of its items is left.
QUEUE_TOLERANCE = 0.1


@dataclass(frozen=True)
class Recommendation:
    id: int
    kind: str
    status: str
    insight_key: str
    statement: str
    action: dict[str, Any]
    metric: str
    baseline: float | None
    safe: bool
    origin: str
    created_at: datetime
    applied_at: datetime | None
    applied_task_id: int | None
    applied_result: dict[str, Any] | None
    dismissed_reason: str | None
    superseded_reason: str | None
    judged_at: datetime | None
    verdict: str | None
    after: float | None
    verdict_detail: str | None
    data_key: str
    insight: dict[str, Any]
    rank: int | None

    @property
    def plan(self) -> str:
        return str(self.action.get("describe", ""))

    @classmethod
    def from_row(cls, row: Any) -> Recommendation:
        return cls(
            id=row.id,
            kind=row.kind,
            status=row.status,
            insight_key=row.insight_key,
            statement=row.statement,
            action=dict(row.action),
            metric=row.metric,
            baseline=row.baseline,
            safe=bool(row.safe),
            origin=row.origin,
            created_at=row.created_at,
            applied_at=row.applied_at,
            applied_task_id=row.applied_task_id,
            applied_result=row.applied_result,
            dismissed_reason=row.dismissed_reason,
            superseded_reason=row.superseded_reason,
            judged_at=row.judged_at,
            verdict=row.verdict,
            after=row.after,
            verdict_detail=row.verdict_detail,
            data_key=row.data_key,
            insight=dict(row.insight),
            rank=row.rank,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "statement": self.statement,
            "plan": self.plan,
            "action": self.action,
            "metric": self.metric,
            "baseline": self.baseline,
            "safe": self.safe,
            "origin": self.origin,
            "insight_key": self.insight_key,
            "created_at": self.created_at.isoformat(),
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "applied_task_id": self.applied_task_id,
            "dismissed_reason": self.dismissed_reason,
            "superseded_reason": self.superseded_reason,
            "verdict": self.verdict,
            "after": self.after,
            "verdict_detail": self.verdict_detail,
        }


@dataclass
class SyncReport:
    made: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    #: kind -> why it is no longer proposed.
    blocked: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "made": self.made,
            "kept": self.kept,
            "superseded": self.superseded,
            "blocked": self.blocked,
        }


def get_recommendation(
    connection: Connection, rec_id: int, *, for_update: bool = False
) -> Recommendation:
    """One recommendation; ``NotFound`` for an unknown id."""
    check_id(rec_id, "recommendation")
    query = select(recs).where(recs.c.id == rec_id)
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"no recommendation with id {rec_id}")
    return Recommendation.from_row(row)


def list_recommendations(
    engine: Engine, *, statuses: Sequence[str] = ("new",), limit: int = 200
) -> list[Recommendation]:
    """Recommendations with these statuses, newest first."""
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(recs)
            .where(recs.c.status.in_(list(statuses)))
            .order_by(recs.c.id.desc())
            .limit(limit)
        ).all()
    return [Recommendation.from_row(row) for row in rows]


def blocked_kinds(connection: Connection) -> dict[str, str]:
    """Kinds no longer proposed because their applied ones failed their judgement."""
    rows = connection.execute(
        select(recs.c.kind, recs.c.verdict).where(recs.c.verdict.is_not(None))
    ).all()
    tally: dict[str, list[int]] = {}
    for row in rows:
        counts = tally.setdefault(row.kind, [0, 0])
        counts[0] += 1
        counts[1] += row.verdict == "failed"
    return {
        kind: f"{failed} of {judged} applied {kind} recommendations did not move their metric"
        for kind, (judged, failed) in tally.items()
        if judged >= BLOCK_AFTER and failed >= BLOCK_SHARE * judged
    }


def sync_recommendations(
    settings: Settings,
    engine: Engine,
    insights: Sequence[Insight],
    *,
    origin: str = "detector",
    coverage: CoverageState | None = None,
) -> SyncReport:
    """Make a recommendation for each actionable insight; supersede those out of date.

    Idempotent: an insight whose data did not change keeps its recommendation (new,
    applied or dismissed); one whose data changed supersedes the new one with a fresh one.
    """
    report = SyncReport()
    now = utcnow()
    actionable = [i for i in insights if i.suggestion is not None]
    keys = {
        insight.key: action_data_key(
            settings, engine, insight.suggestion.action, insight.suggestion.params, state=coverage
        )
        for insight in actionable
        if insight.suggestion is not None
    }
    with database_errors(engine), engine.begin() as connection:
        report.blocked = blocked_kinds(connection)
        rows = connection.execute(
            select(recs).where(recs.c.origin == origin).order_by(recs.c.id)
        ).all()
        latest: dict[str, Any] = {}
        for row in rows:
            latest[row.insight_key] = row
        for row in rows:
            if row.status == "new" and row.insight_key not in keys:
                _supersede(connection, row.id, "its insight no longer holds", now)
                report.superseded.append(row.id)
        for insight in actionable:
            suggestion = insight.suggestion
            assert suggestion is not None
            data_key = keys[insight.key]
            previous = latest.get(insight.key)
            if (
                previous is not None
                and previous.data_key == data_key
                and previous.status != "superseded"
            ):
                report.kept.append(previous.id)
                continue
            if previous is not None and previous.status == "new":
                _supersede(connection, previous.id, "the data it was made from changed", now)
                report.superseded.append(previous.id)
            if suggestion.action in report.blocked:
                continue
            rec_id = connection.execute(
                recs.insert()
                .values(
                    kind=suggestion.action,
                    status="new",
                    insight_key=insight.key,
                    insight=insight.to_dict(),
                    statement=insight.statement,
                    action={
                        "kind": suggestion.action,
                        "params": dict(suggestion.params),
                        "describe": describe_action(suggestion.action, suggestion.params),
                    },
                    metric=suggestion.metric,
                    baseline=suggestion.baseline,
                    data_key=data_key,
                    safe=suggestion.action in SAFE_ACTIONS,
                    origin=origin,
                    created_at=now,
                    updated_at=now,
                )
                .returning(recs.c.id)
            ).scalar_one()
            report.made.append(int(rec_id))
    return report


def _supersede(connection: Connection, rec_id: int, reason: str, now: datetime) -> None:
    connection.execute(
        update(recs)
        .where(recs.c.id == rec_id, recs.c.status == "new")
        .values(status="superseded", superseded_reason=reason, updated_at=now)
    )


def dismiss_recommendation(
    engine: Engine, rec_id: int, reason: str | None = None
) -> Recommendation:
    """Dismiss a new recommendation; it is not proposed again while its data stays the same."""
    with database_errors(engine), engine.begin() as connection:
        rec = get_recommendation(connection, rec_id, for_update=True)
        if rec.status != "new":
            raise Conflict(
                f"recommendation {rec_id} is {rec.status}; only a new one can be dismissed"
            )
        connection.execute(
            update(recs)
            .where(recs.c.id == rec_id)
            .values(
                status="dismissed",
                dismissed_reason=reason or "dismissed by the user",
                updated_at=utcnow(),
            )
        )
        return get_recommendation(connection, rec_id)


def judge_applied(settings: Settings, engine: Engine) -> list[Recommendation]:
    """Judge applied recommendations that have enough new data; returns those judged now."""
    with database_errors(engine), engine.connect() as connection:
        pending = [
            Recommendation.from_row(row)
            for row in connection.execute(
                select(recs).where(recs.c.status == "applied", recs.c.verdict.is_(None))
            )
        ]
    judged = []
    for rec in pending:
        if _follow_ups_open(engine, rec.applied_task_id):
            continue
        params = rec.action.get("params", {})
        after, observations = measure_action(
            settings,
            engine,
            rec.kind,
            params,
            since=rec.applied_at,
            detail=(rec.applied_result or {}).get("detail"),
        )
        if rec.kind == "set-retries" and observations < JUDGE_MIN_RUNS:
            continue
        baseline = rec.baseline or 0.0
        kept = after <= QUEUE_TOLERANCE * baseline if rec.kind in SAFE_ACTIONS else after == 0
        detail = (
            f"{rec.metric}: {baseline:g} before, {after:g} after "
            f"({observations} observations since it was applied)"
        )
        now = utcnow()
        with database_errors(engine), engine.begin() as connection:
            connection.execute(
                update(recs)
                .where(recs.c.id == rec.id, recs.c.verdict.is_(None))
                .values(
                    verdict="kept" if kept else "failed",
                    after=after,
                    judged_at=now,
                    verdict_detail=detail,
                    updated_at=now,
                )
            )
            judged.append(get_recommendation(connection, rec.id))
    return judged


def _follow_ups_open(engine: Engine, task_id: int | None) -> bool:
    if task_id is None:
        return False
    with database_errors(engine), engine.connect() as connection:
        open_tasks = connection.scalar(
            select(tasks.c.id)
            .where(tasks.c.parent_id == task_id, tasks.c.status.in_(("queued", "running")))
            .limit(1)
        )
    return open_tasks is not None
