"""The autolearn cycle: judge what was applied, find insights, make recommendations,
apply the safe ones when asked, and say what changed since the last run.

Runs as an ``autolearn-cycle`` task (logged like any other work); a worker runs it
daily. Idempotent: running it twice in a row makes nothing new the second time.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from atlas.autolearn.apply import APPLY_TASK
from atlas.autolearn.collect import collect_insights
from atlas.autolearn.recommendations import (
    Recommendation,
    judge_applied,
    list_recommendations,
    sync_recommendations,
)
from atlas.config import Settings
from atlas.db import database_errors, utcnow
from atlas.db.tables import autolearn_runs
from atlas.errors import AtlasError
from atlas.tasks import Dispatcher, TaskContext, task_type

__all__ = ["CYCLE_TASK", "last_run", "run_autolearn", "run_cycle"]

CYCLE_TASK = "autolearn-cycle"


def run_cycle(
    settings: Settings,
    engine: Engine,
    *,
    auto: bool = False,
    task_id: int | None = None,
    submit: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One cycle; ``submit(task_type, params)`` queues the safe applies when ``auto``."""
    now = now or utcnow()
    clock = time.perf_counter()
    judged = judge_applied(settings, engine)
    judge_s = time.perf_counter() - clock
    previous = last_run(engine)
    report = collect_insights(
        settings,
        engine,
        now=now,
        previous_clusters=previous.get("clusters") if previous else None,
    )
    clock = time.perf_counter()
    sync = sync_recommendations(settings, engine, report.insights, coverage=report.coverage)
    sync_s = time.perf_counter() - clock
    applying: list[dict[str, Any]] = []
    if auto and submit is not None:
        for rec in list_recommendations(engine, statuses=("new",)):
            if rec.safe:
                outcome = submit(APPLY_TASK, {"recommendation_id": rec.id})
                applying.append({"recommendation_id": rec.id, "task_id": outcome.task_id})
    keys = sorted(insight.key for insight in report.insights)
    before = set(previous["insight_keys"]) if previous else set()
    result: dict[str, Any] = {
        "insights": [insight.to_dict() for insight in report.insights],
        "new_insights": sorted(set(keys) - before),
        "resolved_insights": sorted(before - set(keys)),
        "recommendations": sync.to_dict(),
        "judged": [_judged(rec) for rec in judged],
        "auto_applied": applying,
        "previous_run_at": previous["started_at"] if previous else None,
        "seconds": round(report.seconds, 3),
        "timings": {**report.timings, "judge": round(judge_s, 3), "sync": round(sync_s, 3)},
    }
    with database_errors(engine), engine.begin() as connection:
        connection.execute(
            insert(autolearn_runs).values(
                started_at=now,
                finished_at=utcnow(),
                task_id=task_id,
                insight_keys=keys,
                report={
                    **{k: v for k, v in result.items() if k != "insights"},
                    "clusters": report.clustering,
                },
            )
        )
    return result


def _judged(rec: Recommendation) -> dict[str, Any]:
    return {"id": rec.id, "kind": rec.kind, "verdict": rec.verdict, "detail": rec.verdict_detail}


def last_run(engine: Engine) -> dict[str, Any] | None:
    """The latest cycle's insight keys and time, if any."""
    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(
            select(autolearn_runs).order_by(autolearn_runs.c.id.desc()).limit(1)
        ).first()
    if row is None:
        return None
    return {
        "started_at": row.started_at.isoformat(),
        "insight_keys": list(row.insight_keys),
        "clusters": (row.report or {}).get("clusters"),
    }


@task_type(CYCLE_TASK, retries=1, retry_delay_s=1.0)
def cycle_task(ctx: TaskContext, auto: bool = False) -> dict[str, Any]:
    """Find insights, make recommendations, judge applied ones (and apply safe ones)."""
    return run_cycle(ctx.settings, ctx.engine, auto=auto, task_id=ctx.task_id, submit=ctx.submit)


def run_autolearn(dispatcher: Dispatcher, *, auto: bool = False) -> dict[str, Any]:
    """Run the cycle as a task and wait for it; its report (with ``task_id``).

    Raises ``AtlasError`` with the task's reason when the cycle failed.
    """
    outcome = dispatcher.submit(CYCLE_TASK, {"auto": auto})
    if not outcome.finished:
        outcome = dispatcher.wait([outcome.task_id])[0]
    if not outcome.ok or not isinstance(outcome.result, dict):
        reason = outcome.error or outcome.status
        raise AtlasError(f"the autolearn cycle (task {outcome.task_id}) failed: {reason}")
    return {**outcome.result, "task_id": outcome.task_id}
