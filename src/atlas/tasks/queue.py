"""The Huey queue behind ``queue_url``: SQLite by default, Redis for many machines.

A message carries only a task id; the task itself (type, params, status) lives
in the ``tasks`` table, so any worker that shares the database can run it.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer
from huey.storage import RedisStorage

from atlas.config import Settings
from atlas.errors import InvalidInput, Unavailable, missing_extra
from atlas.paths import os_errors, user_path

__all__ = ["TaskQueue"]

_TASK_NAME = "atlas.execute"
#: Seconds an idle worker's blocking read (BRPOP) waits for a message before it
#: looks again; ``queue_timeout_s`` must be longer (the settings make sure).
BLOCKING_READ_S = 1
#: The priority of a message sent with ``first=True``.
_FIRST = 10


class _RedisStorage(RedisStorage):
    """Huey's Redis list storage, where a prioritised message goes to the head.

    The consumer pops from the right of the list (BRPOP) and new messages are
    pushed on the left, so pushing on the right makes a message the next one
    taken. The list stays a plain list: workers of either kind share a queue.
    """

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        if priority:
            self.conn.rpush(self.queue_key, data)
        else:
            self.conn.lpush(self.queue_key, data)


class TaskQueue:
    """One Huey instance with the single generic task that runs an Atlas task."""

    def __init__(self, settings: Settings, execute: Callable[[int], object]) -> None:
        self.url = settings.queue_url or ""
        self.timeout_s = settings.queue_timeout_s
        self.huey = _make_huey(settings)

        def run(task_id: int) -> None:
            execute(task_id)  # the outcome is in the tasks table, not in Huey

        self._task = self.huey.task(name=_TASK_NAME)(run)
        #: Daily jobs were added (``add_daily``): the consumer schedules them.
        self._periodic = False

    def enqueue(self, task_id: int, delay_s: float = 0.0, *, first: bool = False) -> None:
        """Send a task id to the queue; raises ``Unavailable`` if it cannot be reached.

        ``first`` puts the message ahead of the others: work that was already
        running once (recovered from a dead process, handed back by a stopping
        one) goes on before new work starts.
        """
        priority = _FIRST if first else None
        try:
            if delay_s > 0:
                self._task.schedule(args=(task_id,), delay=delay_s, priority=priority)
            else:
                message = self._task.s(task_id)
                message.priority = priority
                self.huey.enqueue(message)
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            raise _unreachable(self.url, exc, self.timeout_s) from None

    def pending(self) -> int:
        """Messages waiting in the queue."""
        return int(self._read(self.huey.pending_count))

    def pending_task_ids(self) -> set[int]:
        """The task ids of every message waiting or scheduled (a retry's delay) in the queue."""
        ids: set[int] = set()
        for task in [*self._read(self.huey.pending), *self._read(self.huey.scheduled)]:
            if task.name.endswith(_TASK_NAME) and task.args:
                ids.add(int(task.args[0]))
        return ids

    def check(self) -> None:
        """Raise ``Unavailable`` unless the queue answers."""
        storage: Any = self.huey.storage
        if hasattr(storage, "conn") and hasattr(storage.conn, "ping"):
            self._read(storage.conn.ping)
        else:
            self._read(self.huey.pending_count)

    def _read(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            raise _unreachable(self.url, exc, self.timeout_s) from None

    def add_daily(self, name: str, hour: int, minute: int, run: Callable[[], object]) -> None:
        """Run ``run`` every day at ``hour:minute`` UTC in a consumer started with periodic work."""
        from huey import crontab

        def job() -> None:
            run()

        self.huey.periodic_task(
            crontab(minute=str(minute), hour=str(hour)), name=f"atlas.daily.{name}"
        )(job)
        self._periodic = True

    def consumer(
        self,
        *,
        workers: int,
        worker_type: str,
        grace_s: float,
        tick: Callable[[], None] | None = None,
        tick_every_s: float = 5.0,
    ) -> Consumer:
        """A Huey consumer that stops gently and runs ``tick`` every ``tick_every_s``.

        SIGTERM (and SIGINT sent to the consumer alone) let running tasks finish
        for ``grace_s`` seconds; then the workers are interrupted and hand their
        tasks back. ``tick`` runs in the consumer's main thread, between its
        checks, never while it forks a worker process.
        """
        return _AtlasConsumer(
            self.huey,
            tick=tick,
            tick_every_s=tick_every_s,
            workers=workers,
            worker_type=worker_type,
            periodic=self._periodic,
            initial_delay=0.05,
            max_delay=1.0,
            check_worker_health=True,
            health_check_interval=1,
            shutdown_timeout=grace_s,
            graceful_signal="TERM",
        )


class _AtlasConsumer(Consumer):
    def __init__(
        self,
        huey: Huey,
        *,
        tick: Callable[[], None] | None,
        tick_every_s: float,
        **options: Any,
    ) -> None:
        super().__init__(huey, **options)
        # A SIGINT sent to the consumer alone stops it as gently as SIGTERM. (Ctrl-C
        # in a terminal also reaches the worker processes, which hand back at once.)
        self._signal_actions[signal.SIGINT] = (False, True)
        self._tick = tick
        self._tick_every_s = tick_every_s
        self._next_tick = 0.0

    def loop(self, health_check_ts: float | None = None) -> Any:
        health_check_ts = super().loop(health_check_ts)
        now = time.monotonic()
        if self._tick is not None and now >= self._next_tick:
            self._next_tick = now + self._tick_every_s
            try:
                self._tick()
            except Exception as exc:  # the next tick tries again
                logging.getLogger(__name__).warning("recovery pass failed: %s", exc)
        return health_check_ts


def _make_huey(settings: Settings) -> Huey:
    backend = settings.queue_backend
    url = settings.queue_url or ""
    if backend == "redis":
        try:
            import redis  # noqa: F401
        except ModuleNotFoundError:
            raise missing_extra(
                "redis (queue_url points at Redis)",
                "redis",
                alternative="unset queue_url to run tasks in-process",
            ) from None
        return RedisHuey(
            settings.queue_name,
            results=False,
            storage_class=_RedisStorage,
            connection_pool=_redis_pool(url, settings.queue_timeout_s),
            read_timeout=BLOCKING_READ_S,
        )
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


def _redis_pool(url: str, timeout_s: float) -> Any:
    """A connection pool whose every connect and answer is bounded by ``timeout_s``.

    Without it a Redis that accepts connections and never answers (a stopped
    process, a full network buffer) blocks an enqueue, or a worker, forever.
    """
    from redis import ConnectionPool

    try:
        return ConnectionPool.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
    except ValueError as exc:
        raise InvalidInput(
            f"queue_url {_describe(url)!r} is not a valid Redis URL ({exc})"
        ) from None


def _unreachable(url: str, exc: Exception, timeout_s: float) -> Unavailable:
    where = f"the task queue at {_describe(url)}"
    if "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower():
        return Unavailable(
            f"{where} did not answer within {timeout_s:g} s; "
            "check that it is running and not overloaded, or raise queue_timeout_s"
        )
    return Unavailable(
        f"{where} is not reachable ({exc}); start it or unset queue_url to run tasks in-process"
    )


def _describe(url: str) -> str:
    """The queue URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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
