"""The Huey queue behind ``queue_url``: SQLite by default, Redis for many machines.

A message carries only a task id; the task itself (type, params, status) lives
in the ``tasks`` table, so any worker that shares the database can run it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

from atlas.config import Settings
from atlas.errors import InvalidInput, Unavailable
from atlas.paths import os_errors, user_path

__all__ = ["TaskQueue"]

_TASK_NAME = "atlas.execute"


class TaskQueue:
    """One Huey instance with the single generic task that runs an Atlas task."""

    def __init__(self, settings: Settings, execute: Callable[[int], object]) -> None:
        self.url = settings.queue_url or ""
        self.huey = _make_huey(settings)

        def run(task_id: int) -> None:
            execute(task_id)  # the outcome is in the tasks table, not in Huey

        self._task = self.huey.task(name=_TASK_NAME)(run)

    def enqueue(self, task_id: int, delay_s: float = 0.0) -> None:
        """Send a task id to the queue; raises ``Unavailable`` if it cannot be reached."""
        try:
            if delay_s > 0:
                self._task.schedule(args=(task_id,), delay=delay_s)
            else:
                self._task(task_id)
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            raise Unavailable(
                f"the task queue at {self.url} is not reachable ({exc}); "
                "start it or unset queue_url to run tasks in-process"
            ) from None

    def pending(self) -> int:
        """Messages waiting in the queue."""
        return int(self.huey.pending_count())

    def consumer(self, *, workers: int, worker_type: str) -> Consumer:
        return self.huey.create_consumer(
            workers=workers,
            worker_type=worker_type,
            periodic=False,
            initial_delay=0.05,
            max_delay=1.0,
            check_worker_health=True,
        )


def _make_huey(settings: Settings) -> Huey:
    backend = settings.queue_backend
    url = settings.queue_url or ""
    if backend == "redis":
        try:
            import redis  # noqa: F401
        except ModuleNotFoundError:
            raise Unavailable(
                "queue_url points at Redis but the 'redis' package is not installed; "
                "install Atlas with the 'redis' extra"
            ) from None
        return RedisHuey(settings.queue_name, url=url, results=False)
    if backend == "sqlite":
        path = _sqlite_queue_path(settings, url)
        try:
            return SqliteHuey(settings.queue_name, filename=str(path), results=False)
        except sqlite3.DatabaseError as exc:  # opening it creates its tables
            raise Unavailable(
                f"the task queue file {path} cannot be used ({exc}); "
                "point queue_url at another file, or move this one aside"
            ) from None
    raise InvalidInput(f"queue_url {url!r} is not a queue; use sqlite, sqlite:///PATH or redis://")


def _sqlite_queue_path(settings: Settings, url: str) -> Path:
    if url == "sqlite":
        path = settings.home / "queue.db"
    elif url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
    else:
        raise InvalidInput(
            f"queue_url {url!r} is not understood; use sqlite, sqlite:///PATH or redis://HOST:PORT"
        )
    path = user_path(path, what="task queue file")
    with os_errors(path.parent, "cannot be created for the task queue"):
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _is_connection_error(exc: Exception) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectionError", "TimeoutError", "OperationalError"})
