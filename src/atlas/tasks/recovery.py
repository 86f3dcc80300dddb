"""Recovery: taking back tasks whose process died, and finding messages a queue lost.

An orphan is a task that is not finished and that no live process holds:

- its lease ran out, or its owner is a process of this machine that has exited
  (it was killed, it crashed, the machine lost power);
- it is ``running`` with no owner at all (rows from before leases existed);
- in-process only: it is ``queued`` with no owner (a command was interrupted
  before it ran the task, or it was recorded before leases existed). With a
  queue, an ownerless queued task is normal: its message waits in the queue.

Taking an orphan is one compare-and-set ``UPDATE`` on its row, so when several
workers recover at once each orphan is taken by exactly one. A task that was
running gets its dead run's ``task_logs`` row closed as ``error`` ("worker
host:pid stopped (lease expired)"), counted as a lost run and made ``queued``
again; the next run's log row counts it among its retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from atlas.db.tables import task_logs, tasks
from atlas.tasks.leases import HELD, describe_owner, owner_is_dead

__all__ = ["Orphan", "find_lost_messages", "find_orphans", "take_orphan"]


@dataclass(frozen=True)
class Orphan:
    """A task no live process holds, as it was when found."""

    id: int
    task_type: str
    status: str
    owner: str | None
    expires: datetime | None
    started_at: datetime | None
    log_id: int | None
    lost_runs: int
    cancel_requested: bool
    not_before: datetime | None
    params: dict[str, Any]

    @property
    def was_running(self) -> bool:
        return self.status == "running"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_type": self.task_type,
            "status": self.status,
            "owner": describe_owner(self.owner) if self.owner else None,
            "lease_expires_at": self.expires,
            "lost_runs": self.lost_runs,
            "params": self.params,
        }


_COLUMNS = (
    tasks.c.id,
    tasks.c.task_type,
    tasks.c.status,
    tasks.c.lease_owner,
    tasks.c.lease_expires_at,
    tasks.c.started_at,
    tasks.c.log_id,
    tasks.c.lost_runs,
    tasks.c.cancel_requested,
    tasks.c.not_before,
    tasks.c.params,
)


def find_orphans(
    connection: Connection, *, now: datetime, inline: bool, limit: int | None = None
) -> list[Orphan]:
    """Unfinished tasks that no live process holds, oldest first."""
    dead = [
        owner
        for owner in connection.execute(
            select(tasks.c.lease_owner)
            .distinct()
            .where(
                tasks.c.status.in_(HELD),
                tasks.c.lease_owner.is_not(None),
                tasks.c.lease_expires_at >= now,
            )
        ).scalars()
        if owner_is_dead(owner)
    ]
    conditions = [
        tasks.c.lease_expires_at < now,
        and_(tasks.c.status == "running", tasks.c.lease_owner.is_(None)),
    ]
    if dead:
        conditions.append(tasks.c.lease_owner.in_(dead))
    if inline:
        conditions.append(and_(tasks.c.status == "queued", tasks.c.lease_owner.is_(None)))
    query = select(*_COLUMNS).where(tasks.c.status.in_(HELD), or_(*conditions)).order_by(tasks.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [
        Orphan(
            id=row.id,
            task_type=row.task_type,
            status=row.status,
            owner=row.lease_owner,
            expires=row.lease_expires_at,
            started_at=row.started_at,
            log_id=row.log_id,
            lost_runs=row.lost_runs,
            cancel_requested=bool(row.cancel_requested),
            not_before=row.not_before,
            params=row.params,
        )
        for row in connection.execute(query)
    ]


def take_orphan(
    connection: Connection,
    orphan: Orphan,
    *,
    now: datetime,
    owner: str | None,
    expires: datetime | None,
    lease_s: float,
    max_lost_runs: int,
) -> str | None:
    """Take ``orphan`` for ``owner`` (None: for the queue); None if another process was first.

    Returns what became of it: ``queued`` (to run again), or, for a dead run,
    ``cancelled`` (its cancellation had been asked for) or ``error`` (its
    process died ``max_lost_runs`` times).
    """
    lost = orphan.lost_runs + (1 if orphan.was_running else 0)
    who = describe_owner(orphan.owner)
    reason = f"worker {who} stopped (lease expired)" if orphan.owner else "worker stopped"
    final = "queued"
    if orphan.was_running and orphan.cancel_requested:
        final = "cancelled"
    elif orphan.was_running and lost > max_lost_runs:
        final = "error"
        reason += (
            f"; its worker stopped {lost} times while running this task, so it is not run again"
        )
    values: dict[str, Any] = {"status": final, "lost_runs": lost}
    if final == "queued":
        values.update(lease_owner=owner, lease_expires_at=expires)
    else:
        values.update(lease_owner=None, lease_expires_at=None, finished_at=now)
    if orphan.was_running:
        values.update(log_id=None, error_reason=reason)
    taken = connection.execute(
        update(tasks)
        .where(
            tasks.c.id == orphan.id,
            tasks.c.status == orphan.status,
            tasks.c.lease_owner.is_not_distinct_from(orphan.owner),
            tasks.c.lease_expires_at.is_not_distinct_from(orphan.expires),
        )
        .values(**values)
    ).rowcount
    if not taken:
        return None
    if orphan.was_running:
        _close_dead_run(connection, orphan, final, reason, now=now, lease_s=lease_s)
    return final


def _close_dead_run(
    connection: Connection,
    orphan: Orphan,
    final: str,
    reason: str,
    *,
    now: datetime,
    lease_s: float,
) -> None:
    # The run lasted until its last heartbeat, as far as anyone can tell.
    last_beat = now
    if orphan.expires is not None:
        last_beat = min(now, orphan.expires - timedelta(seconds=lease_s))
    ran_ms = 0
    if orphan.started_at is not None:
        ran_ms = max(0, int((last_beat - orphan.started_at).total_seconds() * 1000))
    which = (
        task_logs.c.id == orphan.log_id
        if orphan.log_id is not None
        else task_logs.c.task_id == orphan.id
    )
    connection.execute(
        update(task_logs)
        .where(which, task_logs.c.status == "running")
        .values(
            status="cancelled" if final == "cancelled" else "error",
            error_reason=reason,
            finished_at=now,
            duration_ms=func.coalesce(task_logs.c.duration_ms, 0) + ran_ms,
        )
    )


def find_lost_messages(
    connection: Connection, *, now: datetime, min_age_s: float, pending: set[int]
) -> list[tuple[int, datetime | None, datetime | None]]:
    """Queued tasks with no owner and no message in the queue: (id, enqueued_at, not_before).

    ``pending`` holds the task ids of every message waiting or scheduled in the
    queue. Only tasks last sent at least ``min_age_s`` ago count: a message on
    its way to a worker is in neither place for a moment.
    """
    cutoff = now - timedelta(seconds=min_age_s)
    rows = connection.execute(
        select(tasks.c.id, tasks.c.enqueued_at, tasks.c.not_before).where(
            tasks.c.status == "queued",
            tasks.c.lease_owner.is_(None),
            func.coalesce(tasks.c.enqueued_at, tasks.c.created_at) < cutoff,
        )
    ).all()
    return [(row.id, row.enqueued_at, row.not_before) for row in rows if row.id not in pending]
