"""Retention: delete old task_logs rows once they are folded into the daily summaries.

Only task_logs is ever deleted from; user feedback, learning rules and the
daily summaries are kept. Every deleted row is folded first, so trends over
the cleaned days stay available. Deletes run in batches of ``batch_rows`` rows,
each its own short transaction (a long SQLite write lock would stall the
dispatcher); since each deleted row is already summarised, a cleanup cut short
leaves consistent data, and running it again finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, not_, select, update

from atlas.analytics.fold import fold_task_logs
from atlas.analytics.window import MAX_DAYS, logged_task_types
from atlas.config import AnalyticsSettings
from atlas.db import database_errors, utcnow
from atlas.db.tables import task_log_daily, task_log_fold_state, task_logs
from atlas.errors import Conflict, Unavailable, invalid
from atlas.tasks import Dispatcher, TaskContext, task_type

__all__ = ["CLEANUP_TASK", "CleanupReport", "cleanup_task_logs", "run_cleanup"]

CLEANUP_TASK = "analytics-cleanup"
DEFAULT_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class CleanupReport:
    keep_days: int
    #: Rows created before this time are deleted.
    cutoff: datetime
    dry_run: bool
    #: Rows deleted (dry run: rows older than the cutoff, that a cleanup would delete).
    deleted: int
    by_type: dict[str, int] = field(default_factory=dict)
    #: Rows folded into the daily summaries first (dry run: rows not yet folded).
    folded: int = 0
    #: Old rows kept: still in progress (not yet folded), or the newest row.
    kept: int = 0
    remaining: int = 0
    summary_first_day: date | None = None
    summary_last_day: date | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep_days": self.keep_days,
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "by_type": self.by_type,
            "folded": self.folded,
            "kept": self.kept,
            "remaining": self.remaining,
            "summary_first_day": _iso(self.summary_first_day),
            "summary_last_day": _iso(self.summary_last_day),
            "untouched": ["user_feedback", "learning_rules", "task_log_daily"],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleanupReport:
        return cls(
            keep_days=int(data["keep_days"]),
            cutoff=datetime.fromisoformat(data["cutoff"]),
            dry_run=bool(data["dry_run"]),
            deleted=int(data["deleted"]),
            by_type={str(k): int(v) for k, v in data["by_type"].items()},
            folded=int(data["folded"]),
            kept=int(data["kept"]),
            remaining=int(data["remaining"]),
            summary_first_day=_day(data.get("summary_first_day")),
            summary_last_day=_day(data.get("summary_last_day")),
        )


def check_keep_days(keep_days: int) -> None:
    if isinstance(keep_days, bool) or not isinstance(keep_days, int):
        raise invalid("keep_days", f"must be a whole number of days, got {keep_days!r}")
    if keep_days < 1:
        raise invalid("keep_days", f"must be at least 1 (got {keep_days})")
    if keep_days > MAX_DAYS:
        raise invalid("keep_days", f"must be at most {MAX_DAYS} (ten years), got {keep_days}")


def cleanup_task_logs(
    engine: Engine,
    settings: AnalyticsSettings,
    *,
    keep_days: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> CleanupReport:
    """Fold, then delete task_logs rows older than ``keep_days`` days (default: settings).

    A dry run writes nothing and counts what would go. Idempotent. Raises
    ``InvalidInput`` for a bad ``keep_days`` and ``Unavailable`` when the
    database is locked.
    """
    keep = settings.retention_days if keep_days is None else keep_days
    check_keep_days(keep)
    now = now or utcnow()
    cutoff = now - timedelta(days=keep)
    if dry_run:
        return _plan(engine, keep, cutoff)

    folded = fold_task_logs(engine, settings, now=now).folded
    deleted = 0
    by_type: dict[str, int] = {}
    with database_errors(engine):
        while True:
            with engine.begin() as connection:
                removed = _delete_batch(connection, cutoff, batch_rows)
                for name, count in removed.items():
                    by_type[name] = by_type.get(name, 0) + count
                deleted += sum(removed.values())
                if sum(removed.values()) < batch_rows:
                    _mark_cleaned(connection, cutoff)
                    break
        with engine.connect() as connection:
            kept = _count(connection, task_logs.c.created_at < cutoff)
            remaining = _count(connection, None)
            first_day, last_day = _summary_days(connection)
    return CleanupReport(
        keep_days=keep,
        cutoff=cutoff,
        dry_run=False,
        deleted=deleted,
        by_type=dict(sorted(by_type.items())),
        folded=folded,
        kept=kept,
        remaining=remaining,
        summary_first_day=first_day,
        summary_last_day=last_day,
    )


def run_cleanup(
    dispatcher: Dispatcher,
    *,
    keep_days: int | None = None,
    dry_run: bool = False,
    wait_timeout_s: float | None = None,
) -> CleanupReport:
    """Clean up as a task through the dispatcher (a dry run is read-only and runs here).

    With a task queue this waits for a worker to run it. Raises ``InvalidInput``
    for a bad ``keep_days``, ``Unavailable`` when the cleanup failed or no
    worker ran it in ``wait_timeout_s``, ``Conflict`` when it was cancelled.
    """
    settings = dispatcher.settings.analytics
    keep = settings.retention_days if keep_days is None else keep_days
    check_keep_days(keep)
    if dry_run:
        return cleanup_task_logs(dispatcher.engine, settings, keep_days=keep, dry_run=True)
    outcome = dispatcher.submit(CLEANUP_TASK, {"keep_days": keep})
    if not outcome.finished:
        outcome = dispatcher.wait([outcome.task_id], timeout_s=wait_timeout_s)[0]
    if outcome.status == "completed":
        return CleanupReport.from_dict(outcome.result)
    if outcome.status == "cancelled":
        raise Conflict(f"cleanup task {outcome.task_id} was cancelled")
    if outcome.status == "error":
        raise Unavailable(f"cleanup task {outcome.task_id} failed: {outcome.error}")
    raise Unavailable(
        f"cleanup task {outcome.task_id} is still {outcome.status}; is `atlas worker` running?"
    )


@task_type(CLEANUP_TASK, retries=2, retry_delay_s=1.0)
def cleanup_task(ctx: TaskContext, keep_days: int) -> dict[str, Any]:
    """Fold old task_logs rows into the daily summaries, then delete them."""
    return cleanup_task_logs(ctx.engine, ctx.settings.analytics, keep_days=keep_days).to_dict()


# --- helpers -------------------------------------------------------------------


def _deletable(connection: Connection, cutoff: datetime) -> Any:
    """Rows older than ``cutoff`` that are folded, never the newest row."""
    state = connection.execute(
        select(task_log_fold_state.c.folded_through_id, task_log_fold_state.c.pending_ids)
        .where(task_log_fold_state.c.id == 1)
        .with_for_update()
    ).first()
    watermark = int(state.folded_through_id) if state else 0
    pending = sorted(int(i) for i in (state.pending_ids or ())) if state else []
    newest = connection.scalar(select(func.max(task_logs.c.id))) or 0
    condition = and_(
        task_logs.c.created_at < cutoff,
        task_logs.c.id <= watermark,
        task_logs.c.id < newest,
    )
    if pending:
        condition = and_(condition, not_(task_logs.c.id.in_(pending)))
    return condition


def _delete_batch(connection: Connection, cutoff: datetime, batch_rows: int) -> dict[str, int]:
    condition = _deletable(connection, cutoff)
    ids = connection.execute(
        select(task_logs.c.id, task_logs.c.task_type)
        .where(condition)
        .order_by(task_logs.c.id)
        .limit(batch_rows)
    ).all()
    if not ids:
        return {}
    counts: dict[str, int] = {}
    for _, name in ids:
        counts[name] = counts.get(name, 0) + 1
    # The batch is the first rows by id that match, so this range holds exactly them.
    connection.execute(
        delete(task_logs).where(
            and_(condition, task_logs.c.id >= ids[0].id, task_logs.c.id <= ids[-1].id)
        )
    )
    return counts


def _mark_cleaned(connection: Connection, cutoff: datetime) -> None:
    current = connection.scalar(
        select(task_log_fold_state.c.cleaned_before).where(task_log_fold_state.c.id == 1)
    )
    if current is None or current < cutoff:
        connection.execute(
            update(task_log_fold_state)
            .where(task_log_fold_state.c.id == 1)
            .values(cleaned_before=cutoff, updated_at=utcnow())
        )


def _plan(engine: Engine, keep: int, cutoff: datetime) -> CleanupReport:
    with database_errors(engine), engine.connect() as connection:
        by_type = _old_rows_by_type(connection, cutoff)
        state = connection.execute(
            select(task_log_fold_state.c.folded_through_id, task_log_fold_state.c.pending_ids)
        ).first()
        watermark = int(state.folded_through_id) if state else 0
        unfolded = _count(connection, task_logs.c.id > watermark)
        if state is not None:
            unfolded += len(state.pending_ids or ())
        remaining = _count(connection, None)
        first_day, last_day = _summary_days(connection)
    old = sum(by_type.values())
    return CleanupReport(
        keep_days=keep,
        cutoff=cutoff,
        dry_run=True,
        deleted=old,
        by_type=by_type,
        folded=unfolded,
        kept=0,
        remaining=remaining,
        summary_first_day=first_day,
        summary_last_day=last_day,
    )


def _old_rows_by_type(connection: Connection, cutoff: datetime) -> dict[str, int]:
    """How many rows of each task type started before ``cutoff``."""
    if connection.dialect.name == "postgresql":
        # One (parallel) scan; index-only counts pay heap visits until a vacuum.
        rows = connection.execute(
            select(task_logs.c.task_type, func.count())
            .where(task_logs.c.created_at < cutoff)
            .group_by(task_logs.c.task_type)
        )
        return {name: int(count) for name, count in sorted(rows)}
    # SQLite: one range count per type on (task_type, created_at), cheaper than
    # grouping every old row.
    counts = {}
    for name in logged_task_types(connection):
        count = _count(
            connection, and_(task_logs.c.task_type == name, task_logs.c.created_at < cutoff)
        )
        if count:
            counts[name] = count
    return counts


def _count(connection: Connection, condition: Any) -> int:
    query = select(func.count()).select_from(task_logs)
    if condition is not None:
        query = query.where(condition)
    return int(connection.scalar(query) or 0)


def _summary_days(connection: Connection) -> tuple[date | None, date | None]:
    row = connection.execute(select(func.min(task_log_daily.c.day), func.max(task_log_daily.c.day)))
    first, last = row.one()
    return _day(first), _day(last)


def _day(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None
