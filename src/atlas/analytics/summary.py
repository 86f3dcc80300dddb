"""Success rates, durations, retries and failure reasons of recent task runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func, select

from atlas.analytics.reasons import reason_template
from atlas.analytics.window import (
    DURATION_STATUSES,
    PERCENTILE_RULE,
    SUCCESS_RULE,
    DurationStats,
    Window,
    check_task_type,
    count_if,
    exact_percentiles,
    nothing_recorded,
    success_rate,
)
from atlas.config import AnalyticsSettings
from atlas.db import database_errors
from atlas.db.tables import task_log_fold_state, task_logs
from atlas.errors import InvalidInput

__all__ = ["FailureReason", "MetricsSummary", "RunStats", "summarise_task_metrics"]

_IN_PROGRESS = ("running", "queued")


@dataclass(frozen=True)
class RunStats:
    """Counts and durations of a set of runs (every run in the window of one type, or all)."""

    runs: int
    completed: int
    failed: int
    cancelled: int
    #: Started but not finished; ``stale`` of them for longer than the stale limit.
    running: int
    stale: int
    #: Retries spent in total, and how many runs needed at least one.
    retries: int
    retried_runs: int
    success_rate: float | None
    duration: DurationStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "running": self.running,
            "stale": self.stale,
            "retries": self.retries,
            "retried_runs": self.retried_runs,
            "success_rate": _rate(self.success_rate),
            "duration_ms": {
                "count": self.duration.count,
                "mean": self.duration.mean_ms,
                "p50": self.duration.p50_ms,
                "p95": self.duration.p95_ms,
                "max": self.duration.max_ms,
            },
        }


@dataclass(frozen=True)
class FailureReason:
    """Failed runs whose messages differ only in ids, paths, numbers or quoted values."""

    reason: str
    count: int
    #: Of the failed runs in the window.
    share: float
    #: The most frequent message of the group, as it was logged.
    example: str
    task_types: list[str]
    last_seen: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "count": self.count,
            "share": _rate(self.share),
            "example": self.example,
            "task_types": self.task_types,
            "last_seen": self.last_seen.isoformat(),
        }


@dataclass(frozen=True)
class MetricsSummary:
    window: Window
    #: No task run was ever logged: there is nothing to analyse yet.
    nothing_recorded: bool
    total: RunStats
    by_type: dict[str, RunStats]
    failure_reasons: list[FailureReason]
    #: Distinct reasons, and failed runs whose reason is not among those listed.
    distinct_reasons: int = 0
    other_failures: int = 0
    #: Raw runs before this time were deleted by cleanup (daily summaries remain).
    cleaned_before: datetime | None = None
    stale_after_hours: float = 24.0
    rules: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.total.runs == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.to_dict(),
            "nothing_recorded": self.nothing_recorded,
            "total": self.total.to_dict(),
            "by_type": {name: stats.to_dict() for name, stats in self.by_type.items()},
            "failure_reasons": [reason.to_dict() for reason in self.failure_reasons],
            "distinct_reasons": self.distinct_reasons,
            "other_failures": self.other_failures,
            "cleaned_before": self.cleaned_before.isoformat() if self.cleaned_before else None,
            "stale_after_hours": self.stale_after_hours,
            "rules": self.rules,
        }


def summarise_task_metrics(
    engine: Engine,
    settings: AnalyticsSettings,
    *,
    hours: int = 24,
    task_type: str | None = None,
    top_reasons: int = 10,
    now: datetime | None = None,
) -> MetricsSummary:
    """Runs that started in the last ``hours`` hours: per type and overall, and why they failed.

    Read-only; reads raw task_logs (percentiles are exact). Raises
    ``InvalidInput`` for a bad ``hours`` and ``NotFound`` for an unknown task type.
    An empty database is not an error: the result says ``nothing_recorded``.
    """
    if top_reasons < 1:
        raise InvalidInput("the number of failure reasons to show must be at least 1")
    window = Window.last_hours(hours, task_type=task_type, now=now)
    stale_before = window.until - timedelta(hours=settings.stale_after_hours)
    with database_errors(engine), engine.connect() as connection:
        check_task_type(connection, task_type)
        empty_db = nothing_recorded(connection)
        rows = connection.execute(_per_type_query(window, stale_before)).all()
        overall_q, per_type_q = exact_percentiles(
            connection,
            task_logs.c.duration_ms,
            and_(window.where(), task_logs.c.status.in_(DURATION_STATUSES)),
        )
        reasons, distinct, other = _failure_reasons(connection, window, top_reasons)
        cleaned_before = connection.scalar(
            select(task_log_fold_state.c.cleaned_before).where(task_log_fold_state.c.id == 1)
        )

    by_type: dict[str, RunStats] = {}
    for row in sorted(rows, key=lambda r: (-r.runs, r.task_type)):
        p50, p95 = per_type_q.get(row.task_type, [None, None])
        by_type[row.task_type] = _stats(row, row.d_sum, row.d_max, p50, p95)
    total = _total(rows, overall_q)
    return MetricsSummary(
        window=window,
        nothing_recorded=empty_db,
        total=total,
        by_type=by_type,
        failure_reasons=reasons,
        distinct_reasons=distinct,
        other_failures=other,
        cleaned_before=cleaned_before
        if cleaned_before is not None and cleaned_before > window.since
        else None,
        stale_after_hours=settings.stale_after_hours,
        rules={"success_rate": SUCCESS_RULE, "percentiles": PERCENTILE_RULE},
    )


def _per_type_query(window: Window, stale_before: datetime) -> Any:
    status = task_logs.c.status
    measured = case((status.in_(DURATION_STATUSES), task_logs.c.duration_ms))
    in_progress = status.in_(_IN_PROGRESS)
    return (
        select(
            task_logs.c.task_type,
            func.count().label("runs"),
            count_if(status == "completed").label("completed"),
            count_if(status == "error").label("failed"),
            count_if(status == "cancelled").label("cancelled"),
            count_if(in_progress).label("running"),
            count_if(and_(in_progress, task_logs.c.created_at < stale_before)).label("stale"),
            func.coalesce(func.sum(task_logs.c.retries), 0).label("retries"),
            count_if(task_logs.c.retries > 0).label("retried_runs"),
            func.count(measured).label("d_count"),
            func.sum(measured).label("d_sum"),
            func.max(measured).label("d_max"),
        )
        .where(window.where())
        .group_by(task_logs.c.task_type)
    )


def _stats(row: Any, d_sum: Any, d_max: Any, p50: Any, p95: Any) -> RunStats:
    return RunStats(
        runs=int(row.runs),
        completed=int(row.completed),
        failed=int(row.failed),
        cancelled=int(row.cancelled),
        running=int(row.running),
        stale=int(row.stale),
        retries=int(row.retries),
        retried_runs=int(row.retried_runs),
        success_rate=success_rate(int(row.completed), int(row.failed)),
        duration=DurationStats.of(
            int(row.d_count), None if d_sum is None else int(d_sum), d_max, p50, p95
        ),
    )


@dataclass
class _Totals:
    runs: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = 0
    stale: int = 0
    retries: int = 0
    retried_runs: int = 0
    d_count: int = 0


def _total(rows: Sequence[Any], quantiles: list[float | None]) -> RunStats:
    totals = _Totals()
    d_sum: int | None = None
    d_max: int | None = None
    for row in rows:
        for name in vars(totals):
            setattr(totals, name, getattr(totals, name) + int(getattr(row, name)))
        if row.d_sum is not None:
            d_sum = (d_sum or 0) + int(row.d_sum)
        if row.d_max is not None:
            d_max = max(d_max or 0, int(row.d_max))
    return _stats(totals, d_sum, d_max, quantiles[0], quantiles[1])


def _failure_reasons(
    connection: Any, window: Window, top: int
) -> tuple[list[FailureReason], int, int]:
    # Identical messages are counted by the database; only distinct ones are
    # turned into templates here.
    rows = connection.execute(
        select(
            task_logs.c.error_reason,
            task_logs.c.task_type,
            func.count().label("n"),
            func.max(task_logs.c.created_at).label("last_seen"),
        )
        .where(and_(window.where(), task_logs.c.status == "error"))
        .group_by(task_logs.c.error_reason, task_logs.c.task_type)
    )
    groups: dict[str, dict[str, Any]] = {}
    failed = 0
    for message, task_type, count, last_seen in rows:
        failed += count
        template = reason_template(message)
        group = groups.get(template)
        if group is None:
            group = groups[template] = {
                "count": 0,
                "types": set(),
                "last_seen": last_seen,
                "messages": {},
            }
        group["count"] += count
        group["types"].add(task_type)
        group["last_seen"] = max(group["last_seen"], last_seen)
        text = message or "(no reason given)"
        group["messages"][text] = group["messages"].get(text, 0) + count
    ranked = sorted(groups.items(), key=lambda item: (-item[1]["count"], item[0]))
    listed = [
        FailureReason(
            reason=template,
            count=group["count"],
            share=group["count"] / failed,
            example=max(group["messages"].items(), key=lambda item: (item[1], item[0]))[0],
            task_types=sorted(group["types"]),
            last_seen=group["last_seen"],
        )
        for template, group in ranked[:top]
    ]
    other = failed - sum(reason.count for reason in listed)
    return listed, len(groups), other


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
