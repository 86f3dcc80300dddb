"""Reading back what the dispatcher recorded: recent tasks and their runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from atlas.db import check_id, database_errors
from atlas.db.tables import TASK_STATUSES, task_logs, tasks
from atlas.errors import InvalidInput, NotFound, invalid

__all__ = ["TaskDetail", "TaskRow", "list_tasks", "task_detail"]


@dataclass(frozen=True)
class TaskRow:
    id: int
    task_type: str
    status: str
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_reason: str | None
    worker: str | None
    params: dict[str, Any]

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration_ms": self.duration_ms}


@dataclass(frozen=True)
class TaskDetail:
    task: TaskRow
    result: Any
    runs: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {**self.task.to_dict(), "result": self.result, "runs": self.runs}


def _row(row: Any) -> TaskRow:
    return TaskRow(
        id=row.id,
        task_type=row.task_type,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error_reason=row.error_reason,
        worker=row.worker,
        params=row.params,
    )


def list_tasks(
    engine: Engine,
    *,
    status: str | None = None,
    task_type: str | None = None,
    limit: int = 20,
) -> list[TaskRow]:
    """The most recent tasks, newest first."""
    if limit < 1:
        raise invalid("limit", "must be at least 1")
    if status is not None and status not in TASK_STATUSES:
        raise InvalidInput(f"unknown status {status!r}; use one of {', '.join(TASK_STATUSES)}")
    query = select(tasks).order_by(tasks.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(tasks.c.status == status)
    if task_type is not None:
        query = query.where(tasks.c.task_type == task_type)
    with database_errors(engine), engine.connect() as connection:
        return [_row(row) for row in connection.execute(query)]


def task_detail(engine: Engine, task_id: int) -> TaskDetail:
    """One task with its result and every logged run; raises ``NotFound``."""
    check_id(task_id, "task")
    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(select(tasks).where(tasks.c.id == task_id)).first()
        if row is None:
            raise NotFound(f"no task with id {task_id}")
        runs = [
            {
                "id": log.id,
                "status": log.status,
                "duration_ms": log.duration_ms,
                "retries": log.retries,
                "error_reason": log.error_reason,
                "created_at": log.created_at,
                "finished_at": log.finished_at,
                "queue_wait_ms": log.queue_wait_ms,
                "worker": log.worker,
            }
            for log in connection.execute(
                select(task_logs).where(task_logs.c.task_id == task_id).order_by(task_logs.c.id)
            )
        ]
    return TaskDetail(task=_row(row), result=row.result, runs=runs)
