"""The dispatcher: the one way work runs in Atlas, and the one writer of task_logs.

Every task is a row in ``tasks`` (what to do, its status and result). Each run of
a task is a row in ``task_logs``, written here with no help from the task's code:
``running`` when the run starts, then ``completed`` with ``duration_ms``, or
``error`` with the exception's message as ``error_reason`` and the number of
``retries`` spent, or ``cancelled``.

By default tasks run in-process, at once. With ``queue_url`` set they go to a
Huey queue (SQLite or Redis) and ``atlas worker`` processes, on this machine or
others, run them. Either way a task runs through :meth:`Dispatcher.execute`, so
logging, retries and cancellation behave the same.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, select, update
from sqlalchemy.exc import OperationalError

from atlas.config import Settings
from atlas.db import database_errors, utcnow
from atlas.db.tables import task_logs, tasks
from atlas.errors import AtlasError, InvalidInput, NotFound, Unavailable
from atlas.tasks.registry import TaskType, get_task_type

if TYPE_CHECKING:
    from atlas.tasks.queue import TaskQueue

__all__ = ["Dispatcher", "TaskCancelled", "TaskContext", "TaskOutcome"]

log = logging.getLogger(__name__)

TERMINAL = frozenset({"completed", "error", "cancelled"})

# The statements every task runs, built once: building them costs more than
# executing them on SQLite.
_CLAIM = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"), tasks.c.status == "queued")
    .values(
        status="running",
        started_at=bindparam("b_started"),
        worker=bindparam("b_worker"),
        attempts=tasks.c.attempts + 1,
    )
    .returning(tasks.c.task_type, tasks.c.params, tasks.c.created_at, tasks.c.attempts)
)
_OPEN_LOG = insert(task_logs).values(status="running", retries=0).returning(task_logs.c.id)
_CLOSE_LOG = (
    update(task_logs)
    .where(task_logs.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        duration_ms=func.coalesce(task_logs.c.duration_ms, 0) + bindparam("b_run_ms"),
        retries=bindparam("b_retries"),
        error_reason=bindparam("b_error"),
        finished_at=bindparam("b_finished"),
    )
    .returning(task_logs.c.duration_ms)
)
_CLOSE_TASK = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        result=bindparam("b_result"),
        error_reason=bindparam("b_error"),
        finished_at=bindparam("b_finished"),
    )
)


class TaskCancelled(Exception):
    """Raised inside a task when its cancellation was requested."""


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one submitted task."""

    task_id: int
    task_type: str
    status: str
    result: Any = None
    error: str | None = None
    retries: int = 0
    duration_ms: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass
class TaskContext:
    """What a running task gets from the dispatcher."""

    dispatcher: Dispatcher
    task_id: int
    task_type: str
    attempt: int
    _last_cancel_check: float = field(default=0.0, repr=False)

    @property
    def settings(self) -> Settings:
        return self.dispatcher.settings

    @property
    def engine(self) -> Engine:
        return self.dispatcher.engine

    def submit(self, task_type: str, params: Mapping[str, Any] | None = None) -> TaskOutcome:
        """Submit a follow-up task; in-process it runs after this one ends."""
        return self.dispatcher.submit(task_type, params, parent_id=self.task_id)

    def raise_if_cancelled(self, min_interval_s: float = 0.5) -> None:
        """Long tasks call this between steps so ``atlas tasks cancel`` can stop them."""
        now = time.monotonic()
        if now - self._last_cancel_check < min_interval_s:
            return
        self._last_cancel_check = now
        with self.engine.connect() as connection:
            status = connection.scalar(select(tasks.c.status).where(tasks.c.id == self.task_id))
        if status == "cancelled":
            raise TaskCancelled(f"task {self.task_id} was cancelled")


class Dispatcher:
    """Submits tasks, runs them with retries, and logs every run to task_logs."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._queue: TaskQueue | None = None
        self._queue_lock = threading.Lock()
        # In-process only: tasks submitted by running tasks wait here until the
        # outermost submit() is done with its own tasks.
        self._deferred: collections.deque[int] = collections.deque()
        self._deferred_lock = threading.Lock()
        self._local = threading.local()

    @property
    def worker_name(self) -> str:
        """Who runs tasks here (worker processes fork, so asked each time)."""
        return f"{socket.gethostname()}:{os.getpid()}"

    # -- submitting -------------------------------------------------------

    @property
    def queued(self) -> bool:
        """True when tasks go to a queue for ``atlas worker`` instead of running here."""
        return self.settings.queue_backend != "inline"

    @property
    def queue(self) -> TaskQueue:
        """The Huey queue (SQLite or Redis) behind ``queue_url``; made on first use."""
        with self._queue_lock:
            if self._queue is None:
                from atlas.tasks.queue import TaskQueue

                self._queue = TaskQueue(self.settings, self.execute)
            return self._queue

    def submit(
        self,
        task_type: str,
        params: Mapping[str, Any] | None = None,
        *,
        parent_id: int | None = None,
    ) -> TaskOutcome:
        """Record a task and run it (in-process) or enqueue it (queue configured).

        In-process, the returned outcome is final, unless the task was submitted
        by another running task: then it runs when that one ends and the outcome
        says ``queued``. With a queue, the outcome says ``queued``; see :meth:`wait`.
        Raises ``NotFound`` for an unknown task type and ``Unavailable`` when the
        queue cannot be reached (the task row is then marked ``error``).
        """
        return self.submit_many(task_type, [params or {}], parent_id=parent_id)[0]

    def submit_many(
        self,
        task_type: str,
        params_list: Sequence[Mapping[str, Any]],
        *,
        parent_id: int | None = None,
        concurrency: int = 1,
        on_outcome: Callable[[int, TaskOutcome], None] | None = None,
    ) -> list[TaskOutcome]:
        """Submit one task per params; in-process, run up to ``concurrency`` at once.

        Tasks that these tasks submit in turn run afterwards, one at a time, in
        the order they were submitted (so heavy follow-up stages are not run in
        parallel threads). ``on_outcome(index, outcome)`` is called as each task
        ends in-process, or with the ``queued`` outcome when a queue takes it;
        ``index`` is the task's position in ``params_list``.
        """
        kind = get_task_type(task_type)
        now = utcnow()
        with database_errors(self.engine), self.engine.begin() as connection:
            task_ids = [
                connection.execute(
                    insert(tasks)
                    .values(
                        task_type=kind.name,
                        status="queued",
                        params=dict(params),
                        parent_id=parent_id,
                        created_at=now,
                    )
                    .returning(tasks.c.id)
                ).scalar_one()
                for params in params_list
            ]
        notify = on_outcome or (lambda _index, _outcome: None)
        queued = [TaskOutcome(task_id, kind.name, "queued") for task_id in task_ids]

        if self.queued:
            for index, outcome in enumerate(queued):
                self._enqueue(outcome.task_id)
                notify(index, outcome)
            return queued
        if getattr(self._local, "depth", 0) > 0:
            with self._deferred_lock:
                self._deferred.extend(task_ids)
            return queued

        def run(index: int) -> TaskOutcome:
            outcome = self._run_inline(task_ids[index])
            notify(index, outcome)
            return outcome

        if concurrency > 1 and len(task_ids) > 1:
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                outcomes = list(pool.map(run, range(len(task_ids))))
        else:
            outcomes = [run(index) for index in range(len(task_ids))]
        self._run_deferred()
        return outcomes

    def _run_deferred(self) -> None:
        while True:
            with self._deferred_lock:
                if not self._deferred:
                    return
                task_id = self._deferred.popleft()
            self._run_inline(task_id)

    def _run_inline(self, task_id: int) -> TaskOutcome:
        # The same code path a worker takes for a message from the queue.
        return self.execute(task_id) or self.outcome(task_id)

    def _enqueue(self, task_id: int, delay_s: float = 0.0) -> None:
        try:
            self.queue.enqueue(task_id, delay_s)
        except Unavailable as exc:
            with self.engine.begin() as connection:
                self._finish_unrun(connection, task_id, "error", exc.message)
            raise

    # -- running ------------------------------------------------------------

    def execute(self, task_id: int) -> TaskOutcome | None:
        """Run the task ``task_id`` once (with retries) and log the run.

        The one code path every task takes, in-process or in a worker. A task
        already claimed by another worker, finished or cancelled is left alone
        (returns ``None``; a cancelled one got its ``cancelled`` log row when it
        was cancelled), so a message delivered twice does the work once.
        """
        started = utcnow()
        with database_errors(self.engine), self.engine.begin() as connection:
            row = connection.execute(
                _CLAIM, {"b_id": task_id, "b_started": started, "b_worker": self.worker_name}
            ).first()
            if row is None:
                return None
            log_id = self._open_log(
                connection, task_id, row.task_type, row.attempts - 1, started, row.created_at
            )

        try:
            kind = get_task_type(row.task_type)
        except NotFound as exc:
            return self._close(
                task_id, row.task_type, log_id, "error", error=exc.message, run_ms=0, retries=0
            )
        return self._attempt(kind, task_id, log_id, dict(row.params), attempt=row.attempts)

    def _open_log(
        self,
        connection: Any,
        task_id: int,
        task_type: str,
        attempts: int,
        started: Any,
        created_at: Any,
    ) -> int:
        if attempts > 0:
            # A retry in a queue: the run goes on in the row its first attempt opened.
            open_id = connection.scalar(
                select(task_logs.c.id)
                .where(and_(task_logs.c.task_id == task_id, task_logs.c.status == "running"))
                .order_by(task_logs.c.id.desc())
                .limit(1)
            )
            if open_id is not None:
                return int(open_id)
        # Time spent waiting in the queue; in-process runs never wait in one (NULL).
        wait_ms = (
            max(0, int((started - created_at).total_seconds() * 1000)) if self.queued else None
        )
        return int(
            connection.execute(
                _OPEN_LOG,
                {
                    "task_id": task_id,
                    "task_type": task_type,
                    "created_at": started,
                    "queue_wait_ms": wait_ms,
                    "worker": self.worker_name,
                },
            ).scalar_one()
        )

    def _attempt(
        self, kind: TaskType, task_id: int, log_id: int, params: dict[str, Any], attempt: int
    ) -> TaskOutcome | None:
        policy = self.settings.task_policy(kind.name)
        max_retries = kind.retries if policy.retries is None else policy.retries
        delay_s = kind.retry_delay_s if policy.retry_delay_s is None else policy.retry_delay_s
        backoff = kind.backoff if policy.backoff is None else policy.backoff

        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            while True:
                context = TaskContext(self, task_id, kind.name, attempt)
                clock = time.perf_counter()
                try:
                    result = kind.func(context, **params)
                except TaskCancelled:
                    return self._close(
                        task_id,
                        kind.name,
                        log_id,
                        "cancelled",
                        run_ms=_ms_since(clock),
                        retries=attempt - 1,
                    )
                except (KeyboardInterrupt, SystemExit):
                    self._close(
                        task_id,
                        kind.name,
                        log_id,
                        "cancelled",
                        run_ms=_ms_since(clock),
                        retries=attempt - 1,
                        error="interrupted",
                    )
                    raise
                except Exception as exc:
                    run_ms = _ms_since(clock)
                    reason = error_reason(exc)
                    retry = attempt <= max_retries and is_transient(exc)
                    if not retry:
                        log.debug("task %s (%s) failed", task_id, kind.name, exc_info=True)
                        return self._close(
                            task_id,
                            kind.name,
                            log_id,
                            "error",
                            error=reason,
                            run_ms=run_ms,
                            retries=attempt - 1,
                        )
                    wait_s = delay_s * backoff ** (attempt - 1)
                    self._note_retry(task_id, log_id, run_ms, reason)
                    if self.queued:
                        self._requeue(task_id, wait_s)
                        return None
                    time.sleep(wait_s)
                    attempt += 1
                    self._mark_attempt(task_id)
                    continue
                return self._close(
                    task_id,
                    kind.name,
                    log_id,
                    "completed",
                    result=result,
                    run_ms=_ms_since(clock),
                    retries=attempt - 1,
                )
        finally:
            self._local.depth -= 1

    def _note_retry(self, task_id: int, log_id: int, run_ms: int, reason: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(task_logs)
                .where(task_logs.c.id == log_id)
                .values(
                    retries=task_logs.c.retries + 1,
                    duration_ms=_plus(task_logs.c.duration_ms, run_ms),
                )
            )
            connection.execute(
                update(tasks).where(tasks.c.id == task_id).values(error_reason=reason)
            )

    def _mark_attempt(self, task_id: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(tasks).where(tasks.c.id == task_id).values(attempts=tasks.c.attempts + 1)
            )

    def _requeue(self, task_id: int, delay_s: float) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(tasks).where(tasks.c.id == task_id).values(status="queued"))
        self._enqueue(task_id, delay_s)

    def _close(
        self,
        task_id: int,
        task_type: str,
        log_id: int,
        status: str,
        *,
        run_ms: int,
        retries: int,
        result: Any = None,
        error: str | None = None,
    ) -> TaskOutcome:
        finished = utcnow()
        with self.engine.begin() as connection:
            duration = connection.execute(
                _CLOSE_LOG,
                {
                    "b_id": log_id,
                    "b_status": status,
                    "b_run_ms": run_ms,
                    "b_retries": retries,
                    "b_error": error,
                    "b_finished": finished,
                },
            ).scalar()
            connection.execute(
                _CLOSE_TASK,
                {
                    "b_id": task_id,
                    "b_status": status,
                    "b_result": result,
                    "b_error": error,
                    "b_finished": finished,
                },
            )
        return TaskOutcome(
            task_id=task_id,
            task_type=task_type,
            status=status,
            result=result,
            error=error if status != "completed" else None,
            retries=retries,
            duration_ms=duration,
        )

    @staticmethod
    def _finish_unrun(
        connection: Connection, task_id: int, status: str, reason: str | None
    ) -> bool:
        """Finish, in the caller's transaction, a task still queued; False if it is not."""
        now = utcnow()
        task_type = connection.execute(
            update(tasks)
            .where(and_(tasks.c.id == task_id, tasks.c.status == "queued"))
            .values(status=status, error_reason=reason, finished_at=now)
            .returning(tasks.c.task_type)
        ).scalar()
        if task_type is None:
            return False
        connection.execute(
            insert(task_logs).values(
                task_id=task_id,
                task_type=task_type,
                status=status,
                duration_ms=0,
                retries=0,
                error_reason=reason,
                created_at=now,
                finished_at=now,
            )
        )
        return True

    # -- watching -----------------------------------------------------------

    def outcome(self, task_id: int) -> TaskOutcome:
        with self.engine.connect() as connection:
            row = connection.execute(select(tasks).where(tasks.c.id == task_id)).first()
            if row is None:
                raise NotFound(f"no task with id {task_id}")
            duration = connection.scalar(
                select(task_logs.c.duration_ms)
                .where(task_logs.c.task_id == task_id)
                .order_by(task_logs.c.id.desc())
                .limit(1)
            )
        return TaskOutcome(
            task_id=row.id,
            task_type=row.task_type,
            status=row.status,
            result=row.result,
            error=row.error_reason if row.status != "completed" else None,
            retries=max(0, row.attempts - 1),
            duration_ms=duration,
        )

    def wait(
        self,
        task_ids: Iterable[int],
        *,
        timeout_s: float | None = None,
        poll_s: float = 0.2,
        on_finished: Callable[[TaskOutcome], None] | None = None,
    ) -> list[TaskOutcome]:
        """Block until every task is finished (or ``timeout_s`` passes); outcomes in order."""
        ids = list(task_ids)
        done: dict[int, TaskOutcome] = {}
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while len(done) < len(ids):
            open_ids = [task_id for task_id in ids if task_id not in done]
            with self.engine.connect() as connection:
                finished = (
                    connection.execute(
                        select(tasks.c.id).where(
                            tasks.c.id.in_(open_ids), tasks.c.status.in_(TERMINAL)
                        )
                    )
                    .scalars()
                    .all()
                )
            for task_id in finished:
                done[task_id] = self.outcome(task_id)
                if on_finished is not None:
                    on_finished(done[task_id])
            if len(done) == len(ids):
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(poll_s)
        return [done.get(task_id) or self.outcome(task_id) for task_id in ids]

    def cancel(self, task_id: int) -> TaskOutcome:
        """Cancel a queued task, or ask a running one to stop at its next check.

        Raises ``NotFound`` for an unknown id and ``InvalidInput`` for a task that
        has already finished.
        """
        current = self.outcome(task_id)
        if current.finished:
            raise InvalidInput(f"task {task_id} has already finished ({current.status})")
        with database_errors(self.engine), self.engine.begin() as connection:
            if not self._finish_unrun(connection, task_id, "cancelled", "cancelled before it ran"):
                # Running: the task stops at its next raise_if_cancelled() check.
                connection.execute(
                    update(tasks)
                    .where(and_(tasks.c.id == task_id, tasks.c.status == "running"))
                    .values(status="cancelled")
                )
        return self.outcome(task_id)

    def requeue_orphans(self, older_than_s: float = 30.0) -> int:
        """Send every task still ``queued`` after ``older_than_s`` to the queue again.

        Repairs a crash between recording a task and enqueueing it; a task whose
        message was in the queue after all runs once (see :meth:`execute`).
        """
        if not self.queued:
            return 0
        cutoff = utcnow().timestamp() - older_than_s
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(tasks.c.id, tasks.c.created_at).where(tasks.c.status == "queued")
            ).all()
        orphans = [row.id for row in rows if row.created_at.timestamp() < cutoff]
        for task_id in orphans:
            self._enqueue(task_id)
        return len(orphans)


def error_reason(exc: BaseException) -> str:
    """The exception's message, readable, on one line, without a traceback."""
    if isinstance(exc, AtlasError):
        message = exc.message
    else:
        text = str(exc).strip()
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    first = " ".join(message.split())
    return first[:2000]


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same work again may succeed."""
    if isinstance(exc, AtlasError):
        return exc.transient
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    return isinstance(exc, (OSError, OperationalError, TimeoutError, ConnectionError))


def _ms_since(clock: float) -> int:
    return round((time.perf_counter() - clock) * 1000)


def _plus(column: Any, value: int) -> Any:
    return func.coalesce(column, 0) + value
