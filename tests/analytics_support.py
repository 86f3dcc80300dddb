"""Writing task_logs rows directly, as the dispatcher would, for the analytics tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from atlas.db.tables import task_logs

#: A fixed "now" for service tests: midday, so "the last hours" stay on one UTC day.
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def run(
    task_type: str = "ingest",
    status: str = "completed",
    duration_ms: int | None = 100,
    *,
    at: datetime | None = None,
    ago: timedelta | None = None,
    retries: int = 0,
    error: str | None = None,
    queue_wait_ms: int | None = None,
    task_id: int | None = None,
    worker: str | None = "test:1",
) -> dict[str, Any]:
    """One task_logs row; ``ago`` is measured from :data:`NOW`."""
    created = at if at is not None else NOW - (ago if ago is not None else timedelta(hours=1))
    finished = None
    if status != "running":
        finished = created + timedelta(milliseconds=duration_ms or 0)
    return {
        "task_id": task_id if task_id is not None else 0,
        "task_type": task_type,
        "status": status,
        "duration_ms": None if status == "running" else duration_ms,
        "retries": retries,
        "error_reason": error if status == "error" else None,
        "created_at": created,
        "finished_at": finished,
        "queue_wait_ms": queue_wait_ms,
        "worker": worker,
    }


def insert_runs(engine: Engine, *rows: dict[str, Any]) -> list[int]:
    """Insert rows in the given order (ids grow in that order); returns their ids."""
    ids = []
    with engine.begin() as connection:
        next_task = (
            connection.scalar(
                select(task_logs.c.task_id).order_by(task_logs.c.task_id.desc()).limit(1)
            )
            or 0
        ) + 1
        for row in rows:
            values = dict(row)
            if not values["task_id"]:
                values["task_id"] = next_task
                next_task += 1
            ids.append(
                connection.execute(
                    insert(task_logs).values(values).returning(task_logs.c.id)
                ).scalar_one()
            )
    return ids


def many(count: int, **kwargs: Any) -> list[dict[str, Any]]:
    return [run(**kwargs) for _ in range(count)]
