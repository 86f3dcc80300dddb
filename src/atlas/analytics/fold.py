"""Daily per-type summaries of task_logs (``task_log_daily``), kept by a watermark fold.

How the summaries stay current: before trends or cleanup read them,
:func:`fold_task_logs` adds to them every task_logs row with an id above the
watermark ``task_log_fold_state.folded_through_id`` and moves the watermark, in
one transaction. Folding is incremental (only the new rows are read, by primary
key range, and aggregated in SQL), and idempotent: the summaries and the
watermark change together, so a crash or a second process folding at the same
time (it waits on the state row's lock) can neither skip nor double-count a row.

Why a fold before reading rather than an upsert in the dispatcher's closing
transaction: the dispatcher stays the one simple writer of task_logs, with no
extra statement per task (the logging overhead is the dispatcher's alone) and
no way for analytics to fail a task; rows written by anything else (older
versions, imports, the benchmark) are summarised too; and the cost of a fold is
proportional to the rows logged since the last one, a few milliseconds between
two analyses.

Runs are logged ``running`` when they start and finished in place, so a fold can
pass rows that are still running. Their ids are kept in ``pending_ids`` and
folded once they finish. A run still running ``stale_after_hours`` after it
started is folded as ``unfinished`` (abandoned by a crashed worker); should it
finish later after all, the summary keeps it as unfinished.

On PostgreSQL, ids come from a sequence when a row is inserted but become
visible when its transaction commits, so a lower id could appear after a higher
one was folded past. A fold therefore takes ``LOCK TABLE task_logs IN SHARE
MODE``: it waits for the transactions writing task_logs to end (the
dispatcher's last milliseconds) and holds new ones back until the fold commits,
as SQLite's single writer lock does anyway. Readers are not blocked.

Cleanup deletes only folded rows and always keeps the newest row, because SQLite
hands out the id of a deleted last row again, and the watermark relies on ids
only growing.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    text,
    update,
)

from atlas.analytics.histogram import Histogram, add_count, bucket_sql, merge_into
from atlas.analytics.window import DURATION_STATUSES
from atlas.config import AnalyticsSettings
from atlas.db import database_errors, utcnow
from atlas.db.tables import task_log_daily, task_log_fold_state, task_logs

__all__ = [
    "DailySummary",
    "FoldReport",
    "fold_task_logs",
    "read_daily_summaries",
    "unfolded_summaries",
]

_IN_PROGRESS = ("running", "queued")
_STATUS_FIELD = {
    "completed": "completed",
    "error": "failed",
    "cancelled": "cancelled",
    "running": "unfinished",
    "queued": "unfinished",
}
#: Rows folded per transaction: keeps SQLite's write lock short while catching up.
DEFAULT_BATCH_ROWS = 100_000


@dataclass
class DailySummary:
    """One day of one task type (UTC days); histograms and sums merge by adding."""

    day: date
    task_type: str
    runs: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0
    retries: int = 0
    retried_runs: int = 0
    duration_count: int = 0
    duration_sum_ms: int = 0
    duration_min_ms: int | None = None
    duration_max_ms: int | None = None
    duration_histogram: Histogram = field(default_factory=list)
    queued_runs: int = 0
    queue_wait_sum_ms: int = 0
    queue_wait_max_ms: int | None = None

    def add(self, other: DailySummary) -> None:
        """Fold ``other`` (same day and type, or a merge across them) into this one."""
        # Spelt out rather than looped over field names: trends call this a lot.
        self.runs += other.runs
        self.completed += other.completed
        self.failed += other.failed
        self.cancelled += other.cancelled
        self.unfinished += other.unfinished
        self.retries += other.retries
        self.retried_runs += other.retried_runs
        self.duration_count += other.duration_count
        self.duration_sum_ms += other.duration_sum_ms
        self.queued_runs += other.queued_runs
        self.queue_wait_sum_ms += other.queue_wait_sum_ms
        self.duration_min_ms = _min(self.duration_min_ms, other.duration_min_ms)
        self.duration_max_ms = _max(self.duration_max_ms, other.duration_max_ms)
        self.queue_wait_max_ms = _max(self.queue_wait_max_ms, other.queue_wait_max_ms)
        merge_into(self.duration_histogram, other.duration_histogram)

    def values(self) -> dict[str, Any]:
        """Column values for task_log_daily."""
        data = {name: getattr(self, name) for name in _FIELDS}
        data["duration_histogram"] = list(self.duration_histogram)
        return data

    @classmethod
    def from_row(cls, row: Any) -> DailySummary:
        data = row._asdict()
        data["day"] = _as_date(data["day"])
        data["duration_histogram"] = list(data["duration_histogram"] or ())
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(DailySummary))
_SUMMARY_COLUMNS = tuple(task_log_daily.c[name] for name in _FIELDS)


@dataclass(frozen=True)
class FoldReport:
    #: task_logs rows added to the summaries by this call.
    folded: int
    #: Runs below the watermark still in progress, to be folded when they finish.
    pending: int
    folded_through_id: int


def fold_task_logs(
    engine: Engine,
    settings: AnalyticsSettings,
    *,
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> FoldReport:
    """Bring task_log_daily up to date with task_logs; idempotent and safe to run concurrently.

    Reads only rows logged since the last fold (and the few runs that were
    still in progress then). Catching up on many rows commits every
    ``batch_rows`` rows. Raises ``Unavailable`` when the database is locked.
    """
    stale_before = (now or utcnow()) - timedelta(hours=settings.stale_after_hours)
    folded = 0
    with database_errors(engine):
        with engine.connect() as connection:
            if not _has_work(connection, stale_before):
                state = _read_state(connection)
                return FoldReport(0, len(state[1]), state[0])
        first = True
        while True:
            with engine.begin() as connection:
                count, watermark, pending, done = _fold_batch(
                    connection, stale_before, batch_rows, resolve_pending=first
                )
            folded += count
            first = False
            if done:
                return FoldReport(folded, len(pending), watermark)


def read_daily_summaries(
    connection: Connection, first_day: date, last_day: date, task_type: str | None = None
) -> list[DailySummary]:
    """The summaries of the days ``first_day..last_day`` (inclusive), oldest first."""
    query = select(*_SUMMARY_COLUMNS).where(
        and_(task_log_daily.c.day >= first_day, task_log_daily.c.day <= last_day)
    )
    if task_type is not None:
        query = query.where(task_log_daily.c.task_type == task_type)
    query = query.order_by(task_log_daily.c.day, task_log_daily.c.task_type)
    return [DailySummary.from_row(row) for row in connection.execute(query)]


def unfolded_summaries(
    connection: Connection,
    settings: AnalyticsSettings,
    first_day: date,
    task_type: str | None = None,
    *,
    now: datetime | None = None,
) -> list[DailySummary]:
    """Finished runs from ``first_day`` on that no fold has taken yet, summarised alike.

    These are the few rows logged since the last fold, found by primary key
    (filtering by day and type happens here, so the database never walks an
    index of old rows). Read them in the same transaction as
    :func:`read_daily_summaries` (see :func:`consistent_read`) so that a fold in
    between cannot count a run twice.
    """
    stale_before = (now or utcnow()) - timedelta(hours=settings.stale_after_hours)
    watermark, pending = _read_state(connection)
    done, _ = _resolved(connection, pending, stale_before)
    in_flight = and_(task_logs.c.status.in_(_IN_PROGRESS), task_logs.c.created_at >= stale_before)
    condition = and_(task_logs.c.id > watermark, not_(in_flight))
    if done:
        condition = or_(condition, task_logs.c.id.in_(done))
    _ensure_sqlite_log2(connection)
    summaries: dict[tuple[date, str], DailySummary] = {}
    _aggregate(connection, condition, summaries)
    return [
        summary
        for summary in summaries.values()
        if summary.day >= first_day and task_type in (None, summary.task_type)
    ]


def consistent_read(connection: Connection) -> Connection:
    """The connection in a mode where several reads see one snapshot.

    SQLite transactions already do (and Atlas begins them IMMEDIATE);
    PostgreSQL needs REPEATABLE READ for it.
    """
    if connection.dialect.name == "postgresql":
        return connection.execution_options(isolation_level="REPEATABLE READ")
    return connection


# --- the fold ------------------------------------------------------------------


def _read_state(connection: Connection, *, lock: bool = False) -> tuple[int, set[int]]:
    query = select(task_log_fold_state.c.folded_through_id, task_log_fold_state.c.pending_ids)
    query = query.where(task_log_fold_state.c.id == 1)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        return 0, set()
    return int(row.folded_through_id), {int(i) for i in row.pending_ids or ()}


def _has_work(connection: Connection, stale_before: datetime) -> bool:
    watermark, pending = _read_state(connection)
    max_id = connection.scalar(select(func.max(task_logs.c.id))) or 0
    if max_id != watermark:
        return True
    done, flying = _resolved(connection, pending, stale_before)
    # Work: a pending run finished, went stale or vanished.
    return bool(done) or flying != pending


def _resolved(
    connection: Connection, pending: set[int], stale_before: datetime
) -> tuple[list[int], set[int]]:
    """(pending ids that finished or went stale, pending ids still in flight)."""
    if not pending:
        return [], set()
    rows = connection.execute(
        select(task_logs.c.id, task_logs.c.status, task_logs.c.created_at).where(
            task_logs.c.id.in_(sorted(pending))
        )
    ).all()
    done = [
        row.id for row in rows if row.status not in _IN_PROGRESS or row.created_at < stale_before
    ]
    flying = {row.id for row in rows} - set(done)
    return done, flying


def _fold_batch(
    connection: Connection,
    stale_before: datetime,
    batch_rows: int,
    *,
    resolve_pending: bool,
) -> tuple[int, int, set[int], bool]:
    _ensure_sqlite_log2(connection)
    if connection.scalar(select(func.count()).select_from(task_log_fold_state)) == 0:
        connection.execute(
            insert(task_log_fold_state).values(
                id=1, folded_through_id=0, pending_ids=[], updated_at=utcnow()
            )
        )
    watermark, pending = _read_state(connection, lock=True)
    if connection.dialect.name == "postgresql":
        # Every id up to max(id) is committed (or rolled back) once this is held.
        connection.execute(text("LOCK TABLE task_logs IN SHARE MODE"))
    max_id = int(connection.scalar(select(func.max(task_logs.c.id))) or 0)
    if max_id < watermark:
        # The newest rows were deleted by hand and SQLite will reuse their ids.
        watermark = max_id
        pending = {i for i in pending if i <= max_id}
    summaries: dict[tuple[date, str], DailySummary] = {}
    folded = 0

    if resolve_pending and pending:
        done, flying = _resolved(connection, pending, stale_before)
        if done:
            folded += _aggregate(connection, task_logs.c.id.in_(done), summaries)
        pending = flying  # ids that vanished (deleted) are dropped

    high = min(max_id, watermark + batch_rows)
    if high > watermark:
        in_range = and_(task_logs.c.id > watermark, task_logs.c.id <= high)
        in_flight = and_(
            task_logs.c.status.in_(_IN_PROGRESS), task_logs.c.created_at >= stale_before
        )
        pending |= set(connection.scalars(select(task_logs.c.id).where(in_range, in_flight)))
        folded += _aggregate(connection, and_(in_range, not_(in_flight)), summaries)
        watermark = high

    _store(connection, summaries.values())
    connection.execute(
        update(task_log_fold_state)
        .where(task_log_fold_state.c.id == 1)
        .values(folded_through_id=watermark, pending_ids=sorted(pending), updated_at=utcnow())
    )
    return folded, watermark, pending, watermark >= max_id


def _aggregate(
    connection: Connection, where: Any, into: dict[tuple[date, str], DailySummary]
) -> int:
    """Add the rows matching ``where`` to ``into``, aggregated in SQL; returns the row count."""
    dialect = connection.dialect.name
    day: Any
    if dialect == "postgresql":
        day = literal_column("CAST(timezone('UTC', task_logs.created_at) AS date)")
    else:
        day = literal_column("substr(task_logs.created_at, 1, 10)")
    bucket: Any = literal_column(bucket_sql("task_logs.duration_ms", dialect))
    retried = func.sum(case((task_logs.c.retries > 0, 1), else_=0))
    query = (
        select(
            day.label("day"),
            task_logs.c.task_type,
            task_logs.c.status,
            bucket.label("bucket"),
            func.count().label("n"),
            func.coalesce(func.sum(task_logs.c.retries), 0).label("retries"),
            retried.label("retried"),
            func.count(task_logs.c.duration_ms).label("d_count"),
            func.sum(task_logs.c.duration_ms).label("d_sum"),
            func.min(task_logs.c.duration_ms).label("d_min"),
            func.max(task_logs.c.duration_ms).label("d_max"),
            func.count(task_logs.c.queue_wait_ms).label("q_count"),
            func.sum(task_logs.c.queue_wait_ms).label("q_sum"),
            func.max(task_logs.c.queue_wait_ms).label("q_max"),
        )
        .where(where)
        .group_by(*(literal_column(str(position)) for position in (1, 2, 3, 4)))
    )
    total = 0
    for row in connection.execute(query):
        key = (_as_date(row.day), row.task_type)
        summary = into.get(key)
        if summary is None:
            summary = into[key] = DailySummary(day=key[0], task_type=key[1])
        count = int(row.n)
        summary.runs += count
        status_field = _STATUS_FIELD.get(row.status)
        if status_field is not None:
            setattr(summary, status_field, getattr(summary, status_field) + count)
        summary.retries += int(row.retries)
        summary.retried_runs += int(row.retried or 0)
        summary.queued_runs += int(row.q_count)
        summary.queue_wait_sum_ms += int(row.q_sum or 0)
        summary.queue_wait_max_ms = _max(summary.queue_wait_max_ms, row.q_max)
        if row.status in DURATION_STATUSES and row.bucket is not None:
            summary.duration_count += int(row.d_count)
            summary.duration_sum_ms += int(row.d_sum)
            summary.duration_min_ms = _min(summary.duration_min_ms, int(row.d_min))
            summary.duration_max_ms = _max(summary.duration_max_ms, int(row.d_max))
            add_count(summary.duration_histogram, int(row.bucket), int(row.d_count))
        total += int(row.n)
    return total


def _store(connection: Connection, summaries: Iterable[DailySummary]) -> None:
    """Add ``summaries`` to task_log_daily (read, merge, write: the caller holds the lock)."""
    wanted = {(s.day, s.task_type): s for s in summaries}
    if not wanted:
        return
    days = sorted({day for day, _ in wanted})
    existing: dict[tuple[date, str], DailySummary] = {}
    for start in range(0, len(days), 500):
        for row in connection.execute(
            select(*_SUMMARY_COLUMNS).where(task_log_daily.c.day.in_(days[start : start + 500]))
        ):
            summary = DailySummary.from_row(row)
            if (summary.day, summary.task_type) in wanted:
                existing[(summary.day, summary.task_type)] = summary
    now = utcnow()
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for key, summary in wanted.items():
        current = existing.get(key)
        if current is None:
            inserts.append({**summary.values(), "updated_at": now})
            continue
        current.add(summary)
        values = current.values()
        values["k_day"], values["k_type"] = values.pop("day"), values.pop("task_type")
        updates.append({**values, "updated_at": now})
    if inserts:
        connection.execute(insert(task_log_daily), inserts)
    if updates:
        columns = [c.name for c in task_log_daily.columns if c.name not in ("day", "task_type")]
        connection.execute(
            update(task_log_daily)
            .where(
                and_(
                    task_log_daily.c.day == bindparam("k_day"),
                    task_log_daily.c.task_type == bindparam("k_type"),
                )
            )
            .values({name: bindparam(name) for name in columns}),
            updates,
        )


# --- helpers ---------------------------------------------------------------------


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _min(a: int | None, b: int | None) -> int | None:
    if b is None:
        return a
    return int(b) if a is None else min(a, int(b))


def _max(a: int | None, b: int | None) -> int | None:
    if b is None:
        return a
    return int(b) if a is None else max(a, int(b))


@cache
def _sqlite_has_log2() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT log2(2)")
    except sqlite3.OperationalError:
        return False
    return True


def _ensure_sqlite_log2(connection: Connection) -> None:
    """Register log2() on SQLite builds compiled without the math functions."""
    if connection.dialect.name != "sqlite" or _sqlite_has_log2():
        return
    raw: Any = connection.connection.driver_connection
    raw.create_function("log2", 1, _log2, deterministic=True)


def _log2(value: float | None) -> float | None:
    return None if value is None or value <= 0 else math.log2(value)
