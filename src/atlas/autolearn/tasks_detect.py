"""Detectors over the task log: degrading types, recurring failures, wasted retries, slow types.

They read the figures :mod:`atlas.analytics` already computes (trends, the
summary with its failure reasons, bottlenecks); the only SQL here asks what
analytics does not offer: which runs retried, and the media a failing type hit.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, literal_column, select

from atlas.analytics import (
    DEGRADING,
    MetricsSummary,
    find_bottlenecks,
    summarise_task_metrics,
    task_trends,
)
from atlas.autolearn.actions import untranscribed as _untranscribed
from atlas.autolearn.insights import Insight, Suggestion
from atlas.config import Settings
from atlas.db import database_errors
from atlas.db.tables import task_logs, tasks

__all__ = ["RULES", "detect_task_insights", "wilson_interval"]

#: A type needs this many finished runs in the window before it is judged at all.
MIN_RUNS = 20
#: Recurring failure: the lower 95% bound of the failure rate is at least this...
MIN_FAILURE_RATE = 0.05
#: ...and one reason accounts for at least this share of the type's failures.
MIN_REASON_SHARE = 0.5
#: Wasted retries: at least this many runs retried and still failed, none rescued.
MIN_WASTED_RUNS = 5
#: Slow type: its median is above every other type's p95 and it takes this share of the time.
MIN_BUSY_SHARE = 0.3
_TIMEOUT = re.compile(r"timed? ?out|timeout", re.IGNORECASE)
#: Trends compare the earlier and the recent half of this many days.
TREND_DAYS = 14

#: Slow hours: tasks take this much longer than their type's mean...
SLOW_HOUR_RATIO = 1.5
#: ...in an hour with at least this many runs...
SLOW_HOUR_MIN_RUNS = 30
#: ...and at least this many times the average number of runs per hour.
SLOW_HOUR_LOAD = 2.0

RULES = {
    "degrading": (
        f"the analytics trend rule over the last {TREND_DAYS} days (earlier week vs recent "
        "week): success rate down by a significant two-proportion z-test, or median "
        "duration up by the configured fraction, each half with enough runs"
    ),
    "recurring-failure": (
        f"at least {MIN_RUNS} finished runs, the lower bound of the 95% Wilson interval "
        f"of the failure rate at least {MIN_FAILURE_RATE:.0%}, and one failure reason "
        f"behind at least {MIN_REASON_SHARE:.0%} of the failures"
    ),
    "wasted-retries": (
        f"at least {MIN_WASTED_RUNS} runs that retried and still failed, and no run of "
        "the type that a retry rescued, in the window"
    ),
    "slow-hours": (
        f"per UTC hour of day, each run's duration over its type's mean in the window; an "
        f"hour is slow when its runs take at least {SLOW_HOUR_RATIO:g}x their types' mean, "
        f"it has at least {SLOW_HOUR_MIN_RUNS} runs, and at least {SLOW_HOUR_LOAD:g}x the "
        "average number of runs per hour start in it"
    ),
    "slow-type": (
        f"at least {MIN_RUNS} runs, the type's median duration above the p95 of every "
        f"other type, and the type taking at least {MIN_BUSY_SHARE:.0%} of all task time"
    ),
}


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (0, 1 for no data)."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)


def detect_task_insights(
    settings: Settings, engine: Engine, *, days: int, now: datetime
) -> list[Insight]:
    """Performance and reliability insights over the last ``days`` days of task runs."""
    hours = days * 24
    summary = summarise_task_metrics(engine, settings.analytics, hours=hours, now=now)
    if summary.empty:
        return []
    found: list[Insight] = []
    found += _degrading(settings, engine, now)
    found += _recurring_failures(engine, summary)
    found += _wasted_retries(engine, summary, hours)
    found += _slow_types(engine, summary, hours, now)
    found += _slow_hours(engine, summary, hours)
    return found


def _degrading(settings: Settings, engine: Engine, now: datetime) -> list[Insight]:
    report = task_trends(engine, settings.analytics, days=TREND_DAYS, now=now)
    found = []
    for trend in report.by_type:
        if trend.direction != DEGRADING or trend.earlier is None or trend.recent is None:
            continue
        what = []
        if trend.success == DEGRADING and trend.success_change is not None:
            what.append(f"success rate down {abs(trend.success_change) * 100:.0f} points")
        if trend.duration == DEGRADING and trend.duration_change is not None:
            what.append(f"median duration up {trend.duration_change * 100:.0f}%")
        kind = "reliability" if trend.success == DEGRADING else "performance"
        found.append(
            Insight(
                key=f"{kind}:degrading:{trend.task_type}",
                kind=kind,
                severity="warning",
                statement=f"task type {trend.task_type} is degrading: " + ", ".join(what),
                rule=RULES["degrading"],
                evidence={
                    "task_type": trend.task_type,
                    "earlier": trend.earlier.to_dict(),
                    "recent": trend.recent.to_dict(),
                    "success_change": trend.success_change,
                    "duration_change": trend.duration_change,
                },
            )
        )
    return found


def _recurring_failures(engine: Engine, summary: MetricsSummary) -> list[Insight]:
    found = []
    for name, stats in summary.by_type.items():
        finished = stats.completed + stats.failed
        if finished < MIN_RUNS or stats.failed == 0:
            continue
        low, high = wilson_interval(stats.failed, finished)
        if low < MIN_FAILURE_RATE:
            continue
        reasons = [r for r in summary.failure_reasons if name in r.task_types]
        if not reasons:
            continue
        top = max(reasons, key=lambda r: r.count)
        count = min(top.count, stats.failed)
        if count / stats.failed < MIN_REASON_SHARE:
            continue
        examples = _failed_examples(engine, name, summary)
        suggestion = None
        waiting = _untranscribed(engine, examples["all_media_ids"]) if name == "transcribe" else []
        if _TIMEOUT.search(top.reason) and waiting:
            # Long files that time out: a smaller model transcribes them in time.
            suggestion = Suggestion(
                action="transcribe-smaller",
                params={"media_ids": waiting},
                metric="media whose transcription timed out, still without a transcript",
                baseline=float(len(waiting)),
            )
        found.append(
            Insight(
                key=f"reliability:recurring-failure:{name}",
                kind="reliability",
                severity="problem",
                statement=(
                    f"task type {name} fails {stats.failed / finished:.0%} of runs, "
                    f"{count / stats.failed:.0%} of them with: {top.reason}"
                ),
                rule=RULES["recurring-failure"],
                evidence={
                    "task_type": name,
                    "window": summary.window.to_dict(),
                    "runs": finished,
                    "failed": stats.failed,
                    "failure_rate_interval": [round(low, 4), round(high, 4)],
                    "reason": top.reason,
                    "reason_count": count,
                    "example": top.example,
                    **{k: v for k, v in examples.items() if k != "all_media_ids"},
                },
                suggestion=suggestion,
            )
        )
    return found


def _failed_examples(engine: Engine, task_type: str, summary: MetricsSummary) -> dict[str, Any]:
    window = summary.window.where()
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(task_logs.c.task_id, tasks.c.params)
            .select_from(task_logs.outerjoin(tasks, tasks.c.id == task_logs.c.task_id))
            .where(and_(window, task_logs.c.task_type == task_type, task_logs.c.status == "error"))
            .order_by(task_logs.c.id.desc())
            .limit(500)
        ).all()
        rescued = connection.scalar(
            select(func.count()).where(
                and_(
                    window,
                    task_logs.c.task_type == task_type,
                    task_logs.c.status == "completed",
                    task_logs.c.retries > 0,
                )
            )
        )
    media_ids: list[int] = []
    for row in rows:
        params = row.params or {}
        ids = params.get("media_ids") or ([params["media_id"]] if "media_id" in params else [])
        media_ids += [i for i in ids if isinstance(i, int) and i not in media_ids]
    return {
        "task_ids": [row.task_id for row in rows][:5],
        "media_ids": media_ids[:10],
        "all_media_ids": media_ids,
        "runs_rescued_by_retry": int(rescued or 0),
    }


def _wasted_retries(engine: Engine, summary: MetricsSummary, hours: int) -> list[Insight]:
    window = summary.window.where()
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(
                task_logs.c.task_type,
                task_logs.c.status,
                func.count().label("runs"),
                func.sum(task_logs.c.retries).label("retries"),
                func.sum(task_logs.c.duration_ms).label("ms"),
            )
            .where(and_(window, task_logs.c.retries > 0))
            .group_by(task_logs.c.task_type, task_logs.c.status)
        ).all()
    by_type: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_type.setdefault(
            row.task_type, {"failed": 0, "rescued": 0, "retries": 0, "ms": 0}
        )
        if row.status == "error":
            entry["failed"] += int(row.runs)
            entry["retries"] += int(row.retries or 0)
            entry["ms"] += int(row.ms or 0)
        elif row.status == "completed":
            entry["rescued"] += int(row.runs)
    found = []
    for name, entry in sorted(by_type.items()):
        if entry["failed"] < MIN_WASTED_RUNS or entry["rescued"] > 0:
            continue
        # The share of a failed run's time spent on retries: all attempts but the first.
        wasted_s = entry["ms"] / 1000 * entry["retries"] / (entry["retries"] + entry["failed"])
        found.append(
            Insight(
                key=f"reliability:wasted-retries:{name}",
                kind="reliability",
                severity="warning",
                statement=(
                    f"retries of {name} never help: {entry['failed']} runs retried "
                    f"{entry['retries']} times and still failed, about {wasted_s:.0f} s wasted"
                ),
                rule=RULES["wasted-retries"],
                evidence={
                    "task_type": name,
                    "window_hours": hours,
                    "retried_and_failed": entry["failed"],
                    "retries": entry["retries"],
                    "rescued": 0,
                    "wasted_seconds": round(wasted_s, 1),
                },
                suggestion=Suggestion(
                    action="set-retries",
                    params={"task_type": name, "retries": 0},
                    metric=f"runs of {name} retried in vain",
                    baseline=float(entry["failed"]),
                ),
            )
        )
    return found


def _slow_types(
    engine: Engine, summary: MetricsSummary, hours: int, now: datetime
) -> list[Insight]:
    candidates = []
    for name, candidate in summary.by_type.items():
        others = [
            other.duration.p95_ms
            for other_name, other in summary.by_type.items()
            if other_name != name and other.duration.p95_ms is not None
        ]
        p50 = candidate.duration.p50_ms
        if others and p50 is not None and candidate.runs >= MIN_RUNS and p50 > max(others):
            candidates.append(name)
    if not candidates:  # the bottleneck report (a second pass over the runs) is not needed
        return []
    report = find_bottlenecks(engine, hours=hours, now=now)
    found = []
    for load in report.types:
        if load.task_type not in candidates:
            continue
        stats = summary.by_type.get(load.task_type)
        if stats is None or load.runs < MIN_RUNS or stats.duration.p50_ms is None:
            continue
        others = [
            other.duration.p95_ms
            for name, other in summary.by_type.items()
            if name != load.task_type and other.duration.p95_ms is not None
        ]
        if not others or load.busy_share < MIN_BUSY_SHARE:
            continue
        others_p95 = max(others)
        if stats.duration.p50_ms <= others_p95:
            continue
        found.append(
            Insight(
                key=f"performance:slow-type:{load.task_type}",
                kind="performance",
                severity="info",
                statement=(
                    f"task type {load.task_type} is the bottleneck: its median run "
                    f"({stats.duration.p50_ms / 1000:.1f} s) is slower than 95% of any other "
                    "type's, "
                    f"and it takes {load.busy_share:.0%} of all task time"
                ),
                rule=RULES["slow-type"],
                evidence={
                    "task_type": load.task_type,
                    "window_hours": hours,
                    "runs": load.runs,
                    "p50_ms": stats.duration.p50_ms,
                    "p95_ms": stats.duration.p95_ms,
                    "other_types_max_p95_ms": round(others_p95, 1),
                    "busy_share": round(load.busy_share, 4),
                    "longest_task_ids": [
                        run.task_id for run in report.longest if run.task_type == load.task_type
                    ][:5],
                },
            )
        )
    return found


def _slow_hours(engine: Engine, summary: MetricsSummary, hours: int) -> list[Insight]:
    window = summary.window.where()
    with database_errors(engine), engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            hour: Any = literal_column(
                "CAST(extract(hour from timezone('UTC', task_logs.created_at)) AS integer)"
            )
        else:
            hour = literal_column("CAST(substr(task_logs.created_at, 12, 2) AS integer)")
        rows = connection.execute(
            select(
                hour.label("hour"),
                task_logs.c.task_type,
                func.count().label("runs"),
                func.sum(task_logs.c.duration_ms).label("ms"),
            )
            .where(
                and_(
                    window,
                    task_logs.c.status.in_(("completed", "error")),
                    task_logs.c.duration_ms.is_not(None),
                )
            )
            .group_by(hour, task_logs.c.task_type)
        ).all()
    type_mean: dict[str, float] = {}
    for name, stats in summary.by_type.items():
        if stats.duration.mean_ms:
            type_mean[name] = stats.duration.mean_ms
    per_hour_runs = [0] * 24
    per_hour_expected = [0.0] * 24
    per_hour_ms = [0.0] * 24
    for row in rows:
        mean = type_mean.get(row.task_type)
        if mean is None or row.hour is None or not 0 <= int(row.hour) < 24:
            continue
        slot = int(row.hour)
        per_hour_runs[slot] += int(row.runs)
        per_hour_expected[slot] += mean * int(row.runs)
        per_hour_ms[slot] += float(row.ms or 0)
    total = sum(per_hour_runs)
    if not total:
        return []
    average = total / 24
    slow = [
        slot
        for slot in range(24)
        if per_hour_runs[slot] >= SLOW_HOUR_MIN_RUNS
        and per_hour_runs[slot] >= SLOW_HOUR_LOAD * average
        and per_hour_ms[slot] >= SLOW_HOUR_RATIO * per_hour_expected[slot]
    ]
    if not slow:
        return []
    ratios = {slot: round(per_hour_ms[slot] / per_hour_expected[slot], 2) for slot in slow}
    listed = ", ".join(f"{slot:02d} h ({ratios[slot]:g}x)" for slot in slow)
    return [
        Insight(
            key="schedule:slow-hours",
            kind="schedule",
            severity="info",
            statement=f"tasks run slowest when many run at once: {listed} UTC",
            rule=RULES["slow-hours"],
            evidence={
                "window_hours": hours,
                "slow_hours": slow,
                "slowdown": ratios,
                "runs_per_hour": per_hour_runs,
                "average_runs_per_hour": round(average, 1),
            },
        )
    ]
