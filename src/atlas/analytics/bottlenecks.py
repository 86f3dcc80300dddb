"""Where the time goes: slow task types, the longest runs, and queue wait vs run time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, select

from atlas.analytics.window import (
    DURATION_STATUSES,
    PERCENTILE_RULE,
    Window,
    check_task_type,
    count_if,
    exact_percentiles,
    nothing_recorded,
    sum_if,
)
from atlas.db import database_errors
from atlas.db.tables import task_logs
from atlas.errors import InvalidInput, invalid

__all__ = ["BottleneckReport", "LongRun", "QueueLoad", "TypeLoad", "find_bottlenecks"]

THRESHOLD_RULE = (
    "default threshold: the p95 of the durations of all completed and failed runs in "
    "the window, across task types (`threshold`, in ms, sets it); a run is slow when it "
    "took longer than the threshold"
)


@dataclass(frozen=True)
class TypeLoad:
    """How much of the busy time one task type takes, and how much of it is slow runs."""

    task_type: str
    runs: int
    slow_runs: int
    busy_ms: int
    slow_busy_ms: int
    #: Of the busy time of all types in the window.
    busy_share: float
    slow_busy_share: float
    p95_ms: float | None
    max_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "runs": self.runs,
            "slow_runs": self.slow_runs,
            "slow_run_share": round(self.slow_runs / self.runs, 4) if self.runs else None,
            "busy_ms": self.busy_ms,
            "slow_busy_ms": self.slow_busy_ms,
            "busy_share": round(self.busy_share, 4),
            "slow_busy_share": round(self.slow_busy_share, 4),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
            "max_ms": self.max_ms,
        }


@dataclass(frozen=True)
class LongRun:
    log_id: int
    task_id: int
    task_type: str
    status: str
    duration_ms: int
    started_at: datetime
    queue_wait_ms: int | None
    worker: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "task_id": self.task_id,
            "task_type": self.task_type,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "started_at": self.started_at.isoformat(),
            "queue_wait_ms": self.queue_wait_ms,
            "worker": self.worker,
        }


@dataclass(frozen=True)
class QueueLoad:
    """Runs that went through the task queue: time waiting vs time running."""

    task_type: str | None
    runs: int
    wait_mean_ms: float
    wait_p95_ms: float | None
    wait_max_ms: int
    run_mean_ms: float
    #: wait / (wait + run), summed over the runs.
    wait_share: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "runs": self.runs,
            "wait_mean_ms": round(self.wait_mean_ms, 1),
            "wait_p95_ms": None if self.wait_p95_ms is None else round(self.wait_p95_ms, 1),
            "wait_max_ms": self.wait_max_ms,
            "run_mean_ms": round(self.run_mean_ms, 1),
            "wait_share": round(self.wait_share, 4),
        }


@dataclass(frozen=True)
class BottleneckReport:
    window: Window
    nothing_recorded: bool
    threshold_ms: float | None
    #: "given" (--threshold) or "p95" (derived from the data).
    threshold_source: str
    measured_runs: int
    busy_ms: int
    #: Task types with slow runs, the most slow time first.
    bottlenecks: list[TypeLoad]
    #: Every task type in the window, the most busy time first.
    types: list[TypeLoad]
    longest: list[LongRun]
    #: Per type and overall (None when no run in the window went through the queue).
    queue: list[QueueLoad]
    queue_total: QueueLoad | None

    @property
    def empty(self) -> bool:
        return self.measured_runs == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.to_dict(),
            "nothing_recorded": self.nothing_recorded,
            "threshold_ms": None if self.threshold_ms is None else round(self.threshold_ms, 1),
            "threshold_source": self.threshold_source,
            "measured_runs": self.measured_runs,
            "busy_ms": self.busy_ms,
            "bottlenecks": [load.to_dict() for load in self.bottlenecks],
            "types": [load.to_dict() for load in self.types],
            "longest": [run.to_dict() for run in self.longest],
            "queue": {
                "total": self.queue_total.to_dict() if self.queue_total else None,
                "by_type": [load.to_dict() for load in self.queue],
            },
            "rules": {"threshold": THRESHOLD_RULE, "percentiles": PERCENTILE_RULE},
        }


def find_bottlenecks(
    engine: Engine,
    *,
    hours: int = 24,
    threshold_ms: int | None = None,
    task_type: str | None = None,
    longest: int = 10,
    now: datetime | None = None,
) -> BottleneckReport:
    """Task types whose runs in the last ``hours`` hours took longer than the threshold.

    Read-only, over raw task_logs (completed and failed runs). Raises
    ``InvalidInput`` for a bad ``hours`` or ``threshold_ms`` and ``NotFound``
    for an unknown task type.
    """
    if threshold_ms is not None and (
        isinstance(threshold_ms, bool) or not isinstance(threshold_ms, int) or threshold_ms < 1
    ):
        raise invalid(
            "threshold", f"must be a positive number of milliseconds (got {threshold_ms})"
        )
    if longest < 1:
        raise InvalidInput("the number of longest runs to show must be at least 1")
    window = Window.last_hours(hours, task_type=task_type, now=now)
    duration = task_logs.c.duration_ms
    measured = and_(
        window.where(), task_logs.c.status.in_(DURATION_STATUSES), duration.is_not(None)
    )

    with database_errors(engine), engine.connect() as connection:
        check_task_type(connection, task_type)
        empty_db = nothing_recorded(connection)
        (_, overall_p95), per_type_q = exact_percentiles(connection, duration, measured)
        threshold = float(threshold_ms) if threshold_ms is not None else overall_p95
        rows = connection.execute(_load_query(measured, threshold if threshold is not None else 0))
        rows_list = rows.all()
        longest_runs = [
            LongRun(
                log_id=row.id,
                task_id=row.task_id,
                task_type=row.task_type,
                status=row.status,
                duration_ms=int(row.duration_ms),
                started_at=row.created_at,
                queue_wait_ms=row.queue_wait_ms,
                worker=row.worker,
            )
            for row in connection.execute(
                select(task_logs)
                .where(measured)
                .order_by(duration.desc(), task_logs.c.id)
                .limit(longest)
            )
        ]
        queue, queue_total = _queue_loads(connection, measured)

    busy = sum(int(row.busy or 0) for row in rows_list)
    loads = [
        TypeLoad(
            task_type=row.task_type,
            runs=int(row.runs),
            slow_runs=int(row.slow_runs) if threshold is not None else 0,
            busy_ms=int(row.busy or 0),
            slow_busy_ms=int(row.slow_busy or 0) if threshold is not None else 0,
            busy_share=int(row.busy or 0) / busy if busy else 0.0,
            slow_busy_share=int(row.slow_busy or 0) / busy if busy and threshold else 0.0,
            p95_ms=per_type_q.get(row.task_type, [None, None])[1],
            max_ms=None if row.longest is None else int(row.longest),
        )
        for row in rows_list
    ]
    loads.sort(key=lambda load: (-load.busy_ms, load.task_type))
    bottlenecks = sorted(
        (load for load in loads if load.slow_runs),
        key=lambda load: (-load.slow_busy_ms, load.task_type),
    )
    return BottleneckReport(
        window=window,
        nothing_recorded=empty_db,
        threshold_ms=threshold,
        threshold_source="given" if threshold_ms is not None else "p95",
        measured_runs=sum(load.runs for load in loads),
        busy_ms=busy,
        bottlenecks=bottlenecks,
        types=loads,
        longest=longest_runs,
        queue=queue,
        queue_total=queue_total,
    )


def _load_query(measured: Any, threshold: float) -> Any:
    duration = task_logs.c.duration_ms
    slow = duration > threshold
    return (
        select(
            task_logs.c.task_type,
            func.count().label("runs"),
            func.sum(duration).label("busy"),
            func.max(duration).label("longest"),
            count_if(slow).label("slow_runs"),
            sum_if(slow, duration).label("slow_busy"),
        )
        .where(measured)
        .group_by(task_logs.c.task_type)
    )


def _queue_loads(connection: Any, measured: Any) -> tuple[list[QueueLoad], QueueLoad | None]:
    """Queue wait vs run time of the runs that went through the queue.

    In-process runs have no queue wait (NULL); rows logged by older versions of
    Atlas may say 0 for them, which counts here as a run that did not wait.
    """
    wait = task_logs.c.queue_wait_ms
    queued = and_(measured, wait.is_not(None))
    rows = connection.execute(
        select(
            task_logs.c.task_type,
            func.count().label("runs"),
            func.sum(wait).label("wait"),
            func.max(wait).label("wait_max"),
            func.sum(task_logs.c.duration_ms).label("run"),
        )
        .where(queued)
        .group_by(task_logs.c.task_type)
    ).all()
    if not rows or not any(row.wait for row in rows):
        return [], None
    overall_q, per_type_q = exact_percentiles(connection, wait, queued)

    def load(
        task_type: str | None,
        runs: int,
        wait_ms: int,
        wait_max: int,
        run_ms: int,
        p95: float | None,
    ) -> QueueLoad:
        return QueueLoad(
            task_type=task_type,
            runs=runs,
            wait_mean_ms=wait_ms / runs,
            wait_p95_ms=p95,
            wait_max_ms=wait_max,
            run_mean_ms=run_ms / runs,
            wait_share=wait_ms / (wait_ms + run_ms) if wait_ms + run_ms else 0.0,
        )

    loads = [
        load(
            row.task_type,
            int(row.runs),
            int(row.wait or 0),
            int(row.wait_max or 0),
            int(row.run or 0),
            per_type_q.get(row.task_type, [None, None])[1],
        )
        for row in rows
    ]
    loads.sort(key=lambda item: (-item.wait_mean_ms * item.runs, item.task_type or ""))
    total = load(
        None,
        sum(int(row.runs) for row in rows),
        sum(int(row.wait or 0) for row in rows),
        max(int(row.wait_max or 0) for row in rows),
        sum(int(row.run or 0) for row in rows),
        overall_q[1],
    )
    return loads, total
