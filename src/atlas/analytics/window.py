"""What the analyses share: the checked time window, the task-type filter, the
rules for counting runs, and exact percentiles over raw task_logs rows."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    func,
    select,
    tuple_,
)

from atlas.db import utcnow
from atlas.db.tables import task_log_daily, task_logs
from atlas.errors import NotFound, invalid
from atlas.tasks import registered_task_types

__all__ = [
    "DURATION_STATUSES",
    "FINISHED_STATUSES",
    "MAX_DAYS",
    "MAX_HOURS",
    "PERCENTILE_RULE",
    "SUCCESS_RULE",
    "DurationStats",
    "Window",
    "check_task_type",
    "count_if",
    "exact_percentiles",
    "known_task_types",
    "logged_task_types",
    "nothing_recorded",
    "percentile_of_sorted",
    "success_rate",
    "sum_if",
]

#: Runs that ended. ``running`` rows are in progress (or abandoned, once stale).
FINISHED_STATUSES = ("completed", "error", "cancelled")
#: Runs whose duration measures the work: cancelled runs were cut short.
DURATION_STATUSES = ("completed", "error")

SUCCESS_RULE = (
    "success rate = completed / (completed + failed); cancelled runs (stopped by a "
    "user) and runs still in progress are counted but left out of the rate"
)
PERCENTILE_RULE = "exact, linear interpolation between closest ranks"

MAX_HOURS = 24 * 3650
MAX_DAYS = 3650


def success_rate(completed: int, failed: int) -> float | None:
    """completed / (completed + failed), or None when nothing finished that way."""
    finished = completed + failed
    return completed / finished if finished else None


@dataclass(frozen=True)
class DurationStats:
    """Durations (ms) of completed and failed runs."""

    count: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    max_ms: int | None

    @classmethod
    def of(
        cls, count: int, total_ms: int | None, max_ms: int | None, p50: Any, p95: Any
    ) -> DurationStats:
        return cls(
            count=count,
            mean_ms=round(total_ms / count, 1) if count and total_ms is not None else None,
            p50_ms=_round(p50),
            p95_ms=_round(p95),
            max_ms=int(max_ms) if max_ms is not None else None,
        )


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


@dataclass(frozen=True)
class Window:
    """The runs that started in ``[since, until)``, optionally of one task type."""

    since: datetime
    until: datetime
    task_type: str | None = None

    @classmethod
    def last_hours(
        cls, hours: int, *, task_type: str | None = None, now: datetime | None = None
    ) -> Window:
        """The last ``hours`` hours up to ``now``; raises ``InvalidInput`` for a bad count."""
        if isinstance(hours, bool) or not isinstance(hours, int):
            raise invalid("hours", f"must be a whole number of hours, got {hours!r}")
        if hours < 1:
            raise invalid("hours", f"must be at least 1 (got {hours})")
        if hours > MAX_HOURS:
            raise invalid("hours", f"must be at most {MAX_HOURS} (ten years), got {hours}")
        until = now or utcnow()
        return cls(since=until - timedelta(hours=hours), until=until, task_type=task_type)

    @property
    def hours(self) -> float:
        return (self.until - self.since).total_seconds() / 3600

    def where(self) -> ColumnElement[bool]:
        """The SQL condition selecting the window's task_logs rows."""
        condition = and_(task_logs.c.created_at >= self.since, task_logs.c.created_at < self.until)
        if self.task_type is not None:
            condition = and_(condition, task_logs.c.task_type == self.task_type)
        return condition

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "hours": round(self.hours, 3),
            "task_type": self.task_type,
        }


def nothing_recorded(connection: Connection) -> bool:
    """True when no task run was ever logged (nor summarised before a cleanup)."""
    has_logs = connection.scalar(select(task_logs.c.id).limit(1)) is not None
    return not has_logs and connection.scalar(select(task_log_daily.c.day).limit(1)) is None


def known_task_types(connection: Connection) -> list[str]:
    """Every registered task type and every type that has logged runs, sorted."""
    names = {kind.name for kind in registered_task_types()}
    names.update(connection.scalars(select(task_log_daily.c.task_type).distinct()))
    names.update(logged_task_types(connection))
    return sorted(names)


def logged_task_types(connection: Connection) -> list[str]:
    """The task types present in task_logs, sorted.

    A skip scan over ix_task_logs_task_type_created_at: one index probe per
    type, however many rows there are.
    """
    names: list[str] = []
    previous = ""
    while True:
        found = connection.scalar(
            select(func.min(task_logs.c.task_type)).where(task_logs.c.task_type > previous)
        )
        if found is None:
            return names
        names.append(found)
        previous = found


def check_task_type(connection: Connection, task_type: str | None) -> None:
    """Raise ``NotFound`` for a task type that is neither registered nor ever logged."""
    if task_type is None:
        return
    if any(kind.name == task_type for kind in registered_task_types()):
        return
    logged = connection.scalar(
        select(task_logs.c.id).where(task_logs.c.task_type == task_type).limit(1)
    )
    if logged is not None:
        return
    summarised = connection.scalar(
        select(task_log_daily.c.day).where(task_log_daily.c.task_type == task_type).limit(1)
    )
    if summarised is not None:
        return
    known = ", ".join(known_task_types(connection)) or "none"
    raise NotFound(f"unknown task type {task_type!r} (known: {known})")


def percentile_of_sorted(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``values``, interpolating linearly between ranks.

    The same rule as PostgreSQL's ``percentile_cont`` and numpy's default.
    """
    if not values:
        return None
    rank = q * (len(values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def exact_percentiles(
    connection: Connection,
    value: Any,
    where: ColumnElement[bool],
    quantiles: Sequence[float] = (0.5, 0.95),
) -> tuple[list[float | None], dict[str, list[float | None]]]:
    """Exact quantiles of ``value`` over the rows matching ``where``: overall and per type.

    PostgreSQL computes them with ``percentile_cont``; SQLite has no percentile
    function, so only the one column is fetched and sorted here. NULL values
    are ignored.
    """
    where = and_(where, value.is_not(None))
    if connection.dialect.name == "postgresql":
        columns = [func.percentile_cont(q).within_group(value) for q in quantiles]
        rows = connection.execute(
            select(func.grouping(task_logs.c.task_type), task_logs.c.task_type, *columns)
            .where(where)
            .group_by(func.grouping_sets(tuple_(task_logs.c.task_type), tuple_()))
        )
        overall: list[float | None] = [None] * len(quantiles)
        per_type: dict[str, list[float | None]] = {}
        for grouping, task_type, *values in rows:
            found = [None if v is None else float(v) for v in values]
            if grouping:
                overall = found
            else:
                per_type[task_type] = found
        return overall, per_type

    by_type: dict[str, list[int]] = {}
    for task_type, number in connection.execute(select(task_logs.c.task_type, value).where(where)):
        by_type.setdefault(task_type, []).append(number)
    for numbers in by_type.values():
        numbers.sort()
    everything = _merge_sorted(by_type.values())
    overall = [percentile_of_sorted(everything, q) for q in quantiles]
    return overall, {
        task_type: [percentile_of_sorted(numbers, q) for q in quantiles]
        for task_type, numbers in by_type.items()
    }


def _merge_sorted(lists: Iterable[list[int]]) -> list[int]:
    chunks = [chunk for chunk in lists if chunk]
    if len(chunks) == 1:
        return chunks[0]
    merged = [number for chunk in chunks for number in chunk]
    merged.sort()  # timsort merges the sorted runs in linear time
    return merged


def count_if(condition: ColumnElement[bool]) -> Any:
    """SUM(CASE WHEN condition THEN 1 ELSE 0 END), portable."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def sum_if(condition: ColumnElement[bool], value: Any) -> Any:
    """SUM(CASE WHEN condition THEN value END): NULL when nothing matched."""
    return func.sum(case((condition, value)))
