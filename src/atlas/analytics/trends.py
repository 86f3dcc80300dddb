"""Per day and task type: runs, success rate, p50/p95 duration, and where they are heading.

Read from the daily summaries (see :mod:`atlas.analytics.fold`), so a trend over
90 days costs the same whatever the number of raw rows, and stays available
after cleanup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from atlas.analytics.fold import (
    DailySummary,
    FoldReport,
    consistent_read,
    fold_task_logs,
    read_daily_summaries,
    unfolded_summaries,
)
from atlas.analytics.histogram import histogram_percentiles
from atlas.analytics.window import (
    MAX_DAYS,
    SUCCESS_RULE,
    check_task_type,
    nothing_recorded,
    success_rate,
)
from atlas.config import AnalyticsSettings
from atlas.db import database_errors, utcnow
from atlas.errors import invalid

__all__ = [
    "DEGRADING",
    "IMPROVING",
    "INSUFFICIENT",
    "STABLE",
    "DayPoint",
    "HalfStats",
    "Trend",
    "TrendReport",
    "TrendRule",
    "task_trends",
]

IMPROVING = "improving"
DEGRADING = "degrading"
STABLE = "stable"
INSUFFICIENT = "insufficient data"

#: Two-sided 95% for the two-proportion z-test on success rates.
_Z_95 = 1.96
_HISTOGRAM_RULE = (
    "p50/p95 estimated from log-scale duration histograms (8 buckets per doubling, "
    "within about 5% of the exact value)"
)


@dataclass(frozen=True)
class TrendRule:
    """How the direction of change is judged (shown with every trend)."""

    min_runs: int
    min_success_change: float
    min_duration_change: float

    @classmethod
    def from_settings(cls, settings: AnalyticsSettings) -> TrendRule:
        return cls(
            min_runs=settings.trend_min_runs,
            min_success_change=settings.trend_min_success_change,
            min_duration_change=settings.trend_min_duration_change,
        )

    def describe(self) -> str:
        return (
            "the window is split into an earlier and a recent half of equal days (the "
            "middle day of an odd window is left out); each half is pooled. Success: "
            f"the rate moved by at least {self.min_success_change * 100:g} points and a "
            f"two-proportion z-test gives |z| >= {_Z_95}. Duration: the median moved by "
            f"at least {self.min_duration_change * 100:g}%. Each half needs at least "
            f"{self.min_runs} completed or failed runs, else 'insufficient data'. "
            "Overall: degrading if either got worse, improving if one got better and "
            "neither worse, else stable"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_runs": self.min_runs,
            "min_success_change": self.min_success_change,
            "min_duration_change": self.min_duration_change,
            "z_threshold": _Z_95,
            "text": self.describe(),
        }


@dataclass(frozen=True)
class DayPoint:
    day: date
    runs: int
    completed: int
    failed: int
    cancelled: int
    unfinished: int
    retries: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "runs": self.runs,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "unfinished": self.unfinished,
            "retries": self.retries,
            "success_rate": _r(self.success_rate, 4),
            "p50_ms": _r(self.p50_ms, 1),
            "p95_ms": _r(self.p95_ms, 1),
        }


@dataclass(frozen=True)
class HalfStats:
    """One half of the window, pooled."""

    first_day: date
    last_day: date
    #: Completed + failed runs (the ones the rules look at).
    runs: int
    success_rate: float | None
    p50_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "runs": self.runs,
            "success_rate": _r(self.success_rate, 4),
            "p50_ms": _r(self.p50_ms, 1),
        }


@dataclass(frozen=True)
class Trend:
    """The days of one task type (or of all types when ``task_type`` is None)."""

    task_type: str | None
    days: list[DayPoint]
    earlier: HalfStats | None
    recent: HalfStats | None
    #: Success-rate change in points (0.05 = 5 points) and median change as a fraction.
    success_change: float | None
    duration_change: float | None
    success: str
    duration: str
    direction: str

    @property
    def runs(self) -> int:
        return sum(point.runs for point in self.days)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "runs": self.runs,
            "direction": self.direction,
            "success": self.success,
            "duration": self.duration,
            "success_change": _r(self.success_change, 4),
            "duration_change": _r(self.duration_change, 4),
            "earlier": self.earlier.to_dict() if self.earlier else None,
            "recent": self.recent.to_dict() if self.recent else None,
            "days": [point.to_dict() for point in self.days],
        }


@dataclass(frozen=True)
class TrendReport:
    first_day: date
    last_day: date
    task_type: str | None
    nothing_recorded: bool
    overall: Trend
    by_type: list[Trend]
    rule: TrendRule
    fold: FoldReport

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def percentile_rule(self) -> str:
        return _HISTOGRAM_RULE

    @property
    def empty(self) -> bool:
        return self.overall.runs == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "days": self.days,
            "task_type": self.task_type,
            "nothing_recorded": self.nothing_recorded,
            "direction_rule": self.rule.to_dict(),
            "rules": {"success_rate": SUCCESS_RULE, "percentiles": _HISTOGRAM_RULE},
            "overall": self.overall.to_dict(),
            "by_type": [trend.to_dict() for trend in self.by_type],
            "fold": {
                "folded": self.fold.folded,
                "pending": self.fold.pending,
                "folded_through_id": self.fold.folded_through_id,
            },
        }


def task_trends(
    engine: Engine,
    settings: AnalyticsSettings,
    *,
    days: int = 7,
    task_type: str | None = None,
    now: datetime | None = None,
) -> TrendReport:
    """Daily figures for the last ``days`` UTC days (today included) and their direction.

    Folds new task_logs rows into the daily summaries first (see
    :func:`~atlas.analytics.fold.fold_task_logs`), then reads only summaries.
    Raises ``InvalidInput`` for a bad ``days``, ``NotFound`` for an unknown type.
    """
    if isinstance(days, bool) or not isinstance(days, int):
        raise invalid("days", f"must be a whole number of days, got {days!r}")
    if days < 1:
        raise invalid("days", f"must be at least 1 (got {days})")
    if days > MAX_DAYS:
        raise invalid("days", f"must be at most {MAX_DAYS} (ten years), got {days}")
    now = now or utcnow()
    last_day = now.date()
    first_day = last_day - timedelta(days=days - 1)
    with database_errors(engine), engine.connect() as connection:
        check_task_type(connection, task_type)
        empty_db = nothing_recorded(connection)
    fold = fold_task_logs(engine, settings, now=now)
    with database_errors(engine), engine.connect() as connection:
        connection = consistent_read(connection)
        summaries = read_daily_summaries(connection, first_day, last_day, task_type)
        # Runs logged or finished since the fold above.
        summaries += unfolded_summaries(connection, settings, first_day, task_type, now=now)

    calendar = [first_day + timedelta(days=offset) for offset in range(days)]
    rule = TrendRule.from_settings(settings)
    per_type: dict[str, dict[date, DailySummary]] = {}
    combined: dict[date, DailySummary] = {}
    for summary in summaries:
        per_day = per_type.setdefault(summary.task_type, {})
        if summary.day in per_day:
            per_day[summary.day].add(summary)
        else:
            per_day[summary.day] = summary
        merged = combined.setdefault(summary.day, DailySummary(day=summary.day, task_type="*"))
        merged.add(summary)
    by_type = [
        _trend(name, [per_type[name].get(day) for day in calendar], calendar, rule)
        for name in sorted(per_type, key=lambda n: (-sum(s.runs for s in per_type[n].values()), n))
    ]
    overall = _trend(None, [combined.get(day) for day in calendar], calendar, rule)
    return TrendReport(
        first_day=first_day,
        last_day=last_day,
        task_type=task_type,
        nothing_recorded=empty_db,
        overall=overall,
        by_type=by_type,
        rule=rule,
        fold=fold,
    )


def _point(day: date, summary: DailySummary | None) -> DayPoint:
    if summary is None:
        return DayPoint(day, 0, 0, 0, 0, 0, 0, None, None, None)
    p50, p95 = _percentiles(summary)
    return DayPoint(
        day=day,
        runs=summary.runs,
        completed=summary.completed,
        failed=summary.failed,
        cancelled=summary.cancelled,
        unfinished=summary.unfinished,
        retries=summary.retries,
        success_rate=success_rate(summary.completed, summary.failed),
        p50_ms=p50,
        p95_ms=p95,
    )


def _percentiles(summary: DailySummary) -> tuple[float | None, float | None]:
    p50, p95 = histogram_percentiles(
        summary.duration_histogram,
        (0.5, 0.95),
        minimum=summary.duration_min_ms,
        maximum=summary.duration_max_ms,
    )
    return p50, p95


def _pool(name: str, summaries: Sequence[DailySummary | None], first: date) -> DailySummary:
    pooled = DailySummary(day=first, task_type=name)
    for summary in summaries:
        if summary is not None:
            pooled.add(summary)
    return pooled


def _half(pooled: DailySummary, first: date, last: date) -> HalfStats:
    return HalfStats(
        first_day=first,
        last_day=last,
        runs=pooled.completed + pooled.failed,
        success_rate=success_rate(pooled.completed, pooled.failed),
        p50_ms=_percentiles(pooled)[0],
    )


def _trend(
    name: str | None,
    summaries: list[DailySummary | None],
    calendar: list[date],
    rule: TrendRule,
) -> Trend:
    points = [_point(day, summary) for day, summary in zip(calendar, summaries, strict=True)]
    half = len(calendar) // 2
    if half == 0:
        return Trend(name, points, None, None, None, None, INSUFFICIENT, INSUFFICIENT, INSUFFICIENT)
    early = _pool(name or "*", summaries[:half], calendar[0])
    late = _pool(name or "*", summaries[-half:], calendar[-half])
    earlier = _half(early, calendar[0], calendar[half - 1])
    recent = _half(late, calendar[-half], calendar[-1])

    success, success_change = _success_verdict(early, late, rule)
    duration, duration_change = _duration_verdict(early, late, earlier, recent, rule)
    verdicts = (success, duration)
    if DEGRADING in verdicts:
        direction = DEGRADING
    elif IMPROVING in verdicts:
        direction = IMPROVING
    elif all(v == INSUFFICIENT for v in verdicts):
        direction = INSUFFICIENT
    else:
        direction = STABLE
    return Trend(
        name,
        points,
        earlier,
        recent,
        success_change,
        duration_change,
        success,
        duration,
        direction,
    )


def _success_verdict(
    early: DailySummary, late: DailySummary, rule: TrendRule
) -> tuple[str, float | None]:
    n1, n2 = early.completed + early.failed, late.completed + late.failed
    if n1 == 0 or n2 == 0:
        return INSUFFICIENT, None
    p1, p2 = early.completed / n1, late.completed / n2
    change = p2 - p1
    if n1 < rule.min_runs or n2 < rule.min_runs:
        return INSUFFICIENT, change
    pooled = (early.completed + late.completed) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = change / spread if spread > 0 else 0.0
    if abs(change) >= rule.min_success_change and abs(z) >= _Z_95:
        return (IMPROVING if change > 0 else DEGRADING), change
    return STABLE, change


def _duration_verdict(
    early: DailySummary,
    late: DailySummary,
    earlier: HalfStats,
    recent: HalfStats,
    rule: TrendRule,
) -> tuple[str, float | None]:
    before, after = earlier.p50_ms, recent.p50_ms
    if before is None or after is None:
        return INSUFFICIENT, None
    # Sub-millisecond work has no measurable change.
    change = 0.0 if before < 1 and after < 1 else (after - before) / max(before, 1.0)
    if early.duration_count < rule.min_runs or late.duration_count < rule.min_runs:
        return INSUFFICIENT, change
    if abs(change) >= rule.min_duration_change:
        return (DEGRADING if change > 0 else IMPROVING), change
    return STABLE, change


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
