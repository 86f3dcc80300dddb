"""Applying a recommendation: as an ``autolearn-apply`` task, exactly as planned, once.

The task claims the recommendation (two applies at once: the second is refused),
checks that the data it was made from has not changed (else it is superseded,
refused with the reason, and made again by the next cycle), runs the action and
records it as applied. A dry run checks the same and returns the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, update

from atlas.autolearn.actions import action_data_key, check_action, run_action
from atlas.autolearn.recommendations import Recommendation, get_recommendation
from atlas.config import Settings
from atlas.db import database_errors, utcnow
from atlas.db.tables import autolearn_recommendations as recs
from atlas.errors import Conflict
from atlas.tasks import Dispatcher, TaskContext, TaskOutcome, task_type

__all__ = ["APPLY_TASK", "ApplyResult", "apply_recommendation", "start_apply"]

APPLY_TASK = "autolearn-apply"


@dataclass(frozen=True)
class ApplyResult:
    recommendation: Recommendation
    dry_run: bool
    plan: str
    task_id: int | None = None
    follow_up_task_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendation": self.recommendation.to_dict(),
            "dry_run": self.dry_run,
            "plan": self.plan,
            "task_id": self.task_id,
            "follow_up_task_ids": list(self.follow_up_task_ids),
        }


def _check_applicable(rec: Recommendation) -> None:
    if rec.status != "new":
        reason = rec.dismissed_reason or rec.superseded_reason or ""
        raise Conflict(
            f"recommendation {rec.id} is {rec.status}"
            + (f" ({reason})" if reason else "")
            + "; only a new recommendation can be applied"
        )


def apply_recommendation(
    dispatcher: Dispatcher, rec_id: int, *, dry_run: bool = False
) -> ApplyResult:
    """Apply (or with ``dry_run`` only plan) one recommendation.

    Raises ``NotFound`` for an unknown id, ``Conflict`` for one that is not new,
    is being applied, or whose data changed since it was made (it is then superseded).
    """
    engine = dispatcher.engine
    rec = _applicable(engine, rec_id)
    if dry_run:
        _check_current(dispatcher.settings, engine, rec, supersede=False)
        return ApplyResult(rec, True, rec.plan)
    outcome = dispatcher.submit(APPLY_TASK, {"recommendation_id": rec_id})
    if not outcome.finished:
        outcome = dispatcher.wait([outcome.task_id])[0]
    if not outcome.ok:
        raise Conflict(outcome.error or f"applying recommendation {rec_id} {outcome.status}")
    with database_errors(engine), engine.connect() as connection:
        rec = get_recommendation(connection, rec_id)
    result = outcome.result if isinstance(outcome.result, dict) else {}
    return ApplyResult(
        rec, False, rec.plan, outcome.task_id, tuple(result.get("follow_up_task_ids", []))
    )


def start_apply(dispatcher: Dispatcher, rec_id: int) -> TaskOutcome:
    """Start applying one recommendation as a task and return at once (its id in the outcome).

    Raises as :func:`apply_recommendation` for a recommendation that cannot be
    applied now; a change of its data found by the task ends the task in error.
    """
    _applicable(dispatcher.engine, rec_id)
    return dispatcher.start(APPLY_TASK, {"recommendation_id": rec_id})


def _applicable(engine: Engine, rec_id: int) -> Recommendation:
    with database_errors(engine), engine.connect() as connection:
        rec = get_recommendation(connection, rec_id)
    _check_applicable(rec)
    check_action(rec.action["kind"], rec.action.get("params", {}))
    return rec


def _check_current(
    settings: Settings, engine: Engine, rec: Recommendation, *, supersede: bool
) -> None:
    kind, params = rec.action["kind"], rec.action.get("params", {})
    if action_data_key(settings, engine, kind, params) == rec.data_key:
        return
    reason = "the data it was made from changed since; the next autolearn run makes it again"
    if supersede:
        with database_errors(engine), engine.begin() as connection:
            connection.execute(
                update(recs)
                .where(recs.c.id == rec.id, recs.c.status == "new")
                .values(
                    status="superseded",
                    superseded_reason="the data it was made from changed",
                    claimed_by=None,
                    updated_at=utcnow(),
                )
            )
    raise Conflict(f"recommendation {rec.id} is out of date: {reason}")


@task_type(APPLY_TASK, retries=0)
def apply_task(ctx: TaskContext, recommendation_id: int) -> dict[str, Any]:
    """Apply one autolearn recommendation exactly as its plan says."""
    engine = ctx.engine
    with database_errors(engine), engine.begin() as connection:
        rec = get_recommendation(connection, recommendation_id, for_update=True)
        if rec.status == "applied" and rec.applied_task_id == ctx.task_id:
            return {"recommendation_id": rec.id, "follow_up_task_ids": [], "again": True}
        _check_applicable(rec)
        claimed = connection.execute(
            update(recs)
            .where(
                recs.c.id == rec.id,
                recs.c.status == "new",
                (recs.c.claimed_by.is_(None)) | (recs.c.claimed_by == ctx.task_id),
            )
            .values(claimed_by=ctx.task_id)
        ).rowcount
    if not claimed:
        raise Conflict(f"recommendation {rec.id} is being applied by another task")
    try:
        _check_current(ctx.settings, engine, rec, supersede=True)
        kind, params = rec.action["kind"], rec.action.get("params", {})
        check_action(kind, params)
        run = run_action(ctx, kind, params)
    except BaseException as exc:
        with database_errors(engine), engine.begin() as connection:
            connection.execute(
                update(recs)
                .where(recs.c.id == rec.id, recs.c.claimed_by == ctx.task_id)
                .values(claimed_by=None)
            )
        raise exc
    now = utcnow()
    with database_errors(engine), engine.begin() as connection:
        connection.execute(
            update(recs)
            .where(recs.c.id == rec.id, recs.c.claimed_by == ctx.task_id)
            .values(
                status="applied",
                applied_at=now,
                applied_task_id=ctx.task_id,
                applied_result={"follow_up_task_ids": run.task_ids, "detail": run.detail},
                updated_at=now,
            )
        )
    return {"recommendation_id": rec.id, "follow_up_task_ids": run.task_ids, "detail": run.detail}
