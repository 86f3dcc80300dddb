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

Work is never lost when a process dies: the process that holds a task (to run
it, or in-process to run it later) holds a lease on it, renewed by a heartbeat
(:mod:`atlas.tasks.leases`). A task whose holder died is taken again by a
worker, or in-process by the next command that runs tasks, and its dead run's
log row is closed with the reason (:mod:`atlas.tasks.recovery`). Interrupted
(Ctrl-C, SIGTERM), a run hands its task back instead of dropping it.
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
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import OperationalError

from atlas.config import Settings
from atlas.db import check_id, database_errors, utcnow
from atlas.db.tables import task_logs, tasks
from atlas.errors import AtlasError, InvalidInput, NotFound, Unavailable
from atlas.tasks.leases import LeaseKeeper, owner_is_dead
from atlas.tasks.recovery import Orphan, find_lost_messages, find_orphans, take_orphan
from atlas.tasks.registry import TaskType, get_task_type

if TYPE_CHECKING:
    from atlas.tasks.queue import TaskQueue

__all__ = [
    "Dispatcher",
    "LeaseLost",
    "RecoveryReport",
    "TaskCancelled",
    "TaskContext",
    "TaskOutcome",
]

log = logging.getLogger(__name__)

TERMINAL = frozenset({"completed", "error", "cancelled"})

# The statements every task runs, built once: building them costs more than
# executing them on SQLite.
_CLAIM = (
    update(tasks)
    .where(
        tasks.c.id == bindparam("b_id"),
        tasks.c.status == "queued",
        # Not while another live process holds it (in-process, queued tasks
        # are held by the command that will run them).
        or_(
            tasks.c.lease_owner.is_(None),
            tasks.c.lease_owner == bindparam("b_owner"),
            tasks.c.lease_expires_at < bindparam("b_started"),
        ),
    )
    .values(
        status="running",
        started_at=bindparam("b_started"),
        worker=bindparam("b_worker"),
        attempts=tasks.c.attempts + 1,
        lease_owner=bindparam("b_owner"),
        lease_expires_at=bindparam("b_expires"),
        not_before=None,
    )
    .returning(
        tasks.c.task_type,
        tasks.c.params,
        tasks.c.created_at,
        tasks.c.attempts,
        tasks.c.log_id,
        tasks.c.lost_runs,
        tasks.c.handbacks,
    )
)
_OPEN_LOG = insert(task_logs).values(status="running").returning(task_logs.c.id)
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
# Only the lease's holder closes a task: a process that lost its lease (it was
# taken for dead) leaves the task to the one that took it.
_CLOSE_TASK = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"), tasks.c.lease_owner == bindparam("b_owner"))
    .values(
        status=bindparam("b_status"),
        result=bindparam("b_result"),
        error_reason=bindparam("b_error"),
        finished_at=bindparam("b_finished"),
        lease_owner=None,
        lease_expires_at=None,
        log_id=None,
    )
)


class TaskCancelled(Exception):
    """Raised inside a task when its cancellation was requested."""


class LeaseLost(TaskCancelled):
    """Raised inside a task whose lease another process took (this one was taken for dead)."""


@dataclass(frozen=True)
class RecoveryReport:
    """What one pass of recovery did."""

    #: Tasks taken again: run in-process, or sent to the queue.
    resumed: list[int] = field(default_factory=list)
    #: Dead runs closed for good (cancelled, or their process died too often).
    closed: list[int] = field(default_factory=list)
    #: Queued tasks whose message the queue had lost, sent again.
    resent: list[int] = field(default_factory=list)
    #: task type -> count, of everything above.
    types: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.resumed) + len(self.closed) + len(self.resent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resumed": self.resumed,
            "closed": self.closed,
            "resent": self.resent,
            "types": self.types,
        }


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
        """Long tasks call this between steps so a cancellation can stop them.

        Also stops a run whose lease another process took (``LeaseLost``).
        """
        now = time.monotonic()
        if now - self._last_cancel_check < min_interval_s:
            return
        self._last_cancel_check = now
        with self.engine.connect() as connection:
            row = connection.execute(
                select(tasks.c.cancel_requested, tasks.c.lease_owner).where(
                    tasks.c.id == self.task_id
                )
            ).first()
        if row is None or row.lease_owner != self.dispatcher.leases.owner:
            raise LeaseLost(f"task {self.task_id} was taken over by another process")
        if row.cancel_requested:
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
        #: In-process: the threads running tasks started by :meth:`start`.
        self._background: set[threading.Thread] = set()
        self.leases = LeaseKeeper(engine, settings.execution.lease_s)
        # In-process: orphans are looked for once per dispatcher, at its first submit.
        self._adopted = False
        #: Called with a RecoveryReport when a submit in-process takes orphans
        #: to run them; lets an interface say why more work runs than it asked for.
        self.on_recovered: Callable[[RecoveryReport], None] | None = None

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
        # In-process, this process holds the tasks until it has run them; with a
        # queue, the message is what holds a queued task.
        owner = None if self.queued else self.leases.owner
        expires = None if self.queued else self.leases.expiry(now)
        if owner is not None:
            self.leases.hold()
        task_ids: list[int] = []
        if params_list:
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
                            enqueued_at=now if self.queued else None,
                            lease_owner=owner,
                            lease_expires_at=expires,
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

        try:
            self._adopt_orphans()
            if concurrency > 1 and len(task_ids) > 1:
                with ThreadPoolExecutor(max_workers=concurrency) as pool:
                    outcomes = list(pool.map(run, range(len(task_ids))))
            else:
                outcomes = [run(index) for index in range(len(task_ids))]
            self._run_deferred()
        except BaseException:
            # Interrupted (Ctrl-C) or failed: what this process still holds goes
            # back, so the next command takes it at once.
            self.release_held()
            raise
        return outcomes

    def start(self, task_type: str, params: Mapping[str, Any] | None = None) -> TaskOutcome:
        """Submit a task without waiting for it; the outcome says ``queued``.

        With a queue this is :meth:`submit`. In-process, the task is recorded
        (held by this process's lease, as :meth:`submit` holds it) and run in a
        background thread, with the tasks it submits in turn; a server answers
        at once and reports progress from the ``tasks`` table.
        """
        if self.queued:
            return self.submit(task_type, params)
        kind = get_task_type(task_type)
        now = utcnow()
        self.leases.hold()
        with database_errors(self.engine), self.engine.begin() as connection:
            task_id = connection.execute(
                insert(tasks)
                .values(
                    task_type=kind.name,
                    status="queued",
                    params=dict(params or {}),
                    created_at=now,
                    lease_owner=self.leases.owner,
                    lease_expires_at=self.leases.expiry(now),
                )
                .returning(tasks.c.id)
            ).scalar_one()

        def run() -> None:
            try:
                self._run_inline(task_id)
                self._run_deferred()
            except Exception:  # logged by the run itself; a recovery takes what is left
                log.exception("background task %s failed", task_id)
                self.release_held()
            finally:
                self._background.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"atlas-task-{task_id}", daemon=True)
        self._background.add(thread)
        thread.start()
        return TaskOutcome(task_id, kind.name, "queued")

    def _run_deferred(self) -> None:
        while True:
            with self._deferred_lock:
                if not self._deferred:
                    return
                task_id = self._deferred.popleft()
            self._run_inline(task_id)

    def _adopt_orphans(self) -> None:
        """In-process: once per dispatcher, take the orphaned tasks to run after ours."""
        if self._adopted:
            return
        self._adopted = True
        report = self.recover()
        if report.resumed:
            with self._deferred_lock:
                self._deferred.extend(report.resumed)
        if report.total and self.on_recovered is not None:
            self.on_recovered(report)

    def release_held(self) -> int:
        """Give up the leases of the queued tasks this process holds; returns how many."""
        with self._deferred_lock:
            self._deferred.clear()
        try:
            with self.engine.begin() as connection:
                return int(
                    connection.execute(
                        update(tasks)
                        .where(
                            tasks.c.lease_owner == self.leases.owner,
                            tasks.c.status == "queued",
                        )
                        .values(lease_owner=None, lease_expires_at=None)
                    ).rowcount
                )
        except Exception:  # an interrupted process must still exit; the leases run out
            log.warning("could not release task leases", exc_info=True)
            return 0

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

    def _send_again(self, task_id: int, not_before: Any = None) -> None:
        """Send a message for a queued task again, keeping its retry back-off.

        The message goes ahead of new work: this task was taken once already.
        A queue that cannot be reached leaves the task queued (a later pass,
        or the next worker to start, sends it), unlike a first submit.
        """
        delay_s = 0.0
        if not_before is not None:
            delay_s = max(0.0, (not_before - utcnow()).total_seconds())
        self.queue.enqueue(task_id, delay_s, first=True)
        with self.engine.begin() as connection:
            connection.execute(
                update(tasks).where(tasks.c.id == task_id).values(enqueued_at=utcnow())
            )

    # -- running ------------------------------------------------------------

    def execute(self, task_id: int) -> TaskOutcome | None:
        """Run the task ``task_id`` once (with retries) and log the run.

        The one code path every task takes, in-process or in a worker. A task
        already claimed by another worker, finished or cancelled is left alone
        (returns ``None``; a cancelled one got its ``cancelled`` log row when it
        was cancelled), so a message delivered twice does the work once.
        """
        started = utcnow()
        self.leases.hold()
        with database_errors(self.engine), self.engine.begin() as connection:
            row = connection.execute(
                _CLAIM,
                {
                    "b_id": task_id,
                    "b_started": started,
                    "b_worker": self.worker_name,
                    "b_owner": self.leases.owner,
                    "b_expires": self.leases.expiry(started),
                },
            ).first()
            if row is None:
                return None
            log_id = self._open_log(
                connection,
                task_id,
                row.task_type,
                row.log_id,
                row.attempts - 1,
                started,
                row.created_at,
            )

        try:
            kind = get_task_type(row.task_type)
        except NotFound as exc:
            return self._close(
                task_id, row.task_type, log_id, "error", error=exc.message, run_ms=0, retries=0
            )
        return self._attempt(
            kind,
            task_id,
            log_id,
            dict(row.params),
            attempt=row.attempts,
            interrupted=row.lost_runs + row.handbacks,
        )

    def _open_log(
        self,
        connection: Any,
        task_id: int,
        task_type: str,
        current_log: int | None,
        attempts: int,
        started: Any,
        created_at: Any,
    ) -> int:
        if current_log is not None:
            # A retry in a queue: the run goes on in the row its first attempt opened.
            open_id = connection.scalar(
                select(task_logs.c.id).where(
                    and_(task_logs.c.id == current_log, task_logs.c.status == "running")
                )
            )
            if open_id is not None:
                return int(open_id)
        # Time spent waiting in the queue; in-process runs never wait in one (NULL).
        wait_ms = (
            max(0, int((started - created_at).total_seconds() * 1000)) if self.queued else None
        )
        log_id = int(
            connection.execute(
                _OPEN_LOG,
                {
                    "task_id": task_id,
                    "task_type": task_type,
                    "created_at": started,
                    "queue_wait_ms": wait_ms,
                    "worker": self.worker_name,
                    # Earlier attempts, those whose process died included.
                    "retries": attempts,
                },
            ).scalar_one()
        )
        connection.execute(update(tasks).where(tasks.c.id == task_id).values(log_id=log_id))
        return log_id

    def _attempt(
        self,
        kind: TaskType,
        task_id: int,
        log_id: int,
        params: dict[str, Any],
        attempt: int,
        interrupted: int = 0,
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
                except LeaseLost:
                    # Another process took this task for dead and owns it now.
                    return self.outcome(task_id)
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
                    self._hand_back(task_id, log_id, run_ms=_ms_since(clock), retries=attempt - 1)
                    raise
                except Exception as exc:
                    run_ms = _ms_since(clock)
                    reason = error_reason(exc)
                    # Runs cut short by a dead or stopped process are not the
                    # task's failures: they do not use up its retries.
                    retry = attempt - interrupted <= max_retries and is_transient(exc)
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
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.lease_owner == self.leases.owner)
                .values(
                    status="queued",
                    lease_owner=None,
                    lease_expires_at=None,
                    not_before=now + timedelta(seconds=delay_s),
                    enqueued_at=now,
                )
            )
        self._enqueue(task_id, delay_s)

    def _hand_back(self, task_id: int, log_id: int, *, run_ms: int, retries: int) -> None:
        """An interrupted run gives its task back to be run again; its log row says so."""
        where = "the queue" if self.queued else "the library"
        reason = f"interrupted; handed back to {where} to run again"
        finished = utcnow()
        try:
            with self.engine.begin() as connection:
                handed = connection.execute(
                    update(tasks)
                    .where(tasks.c.id == task_id, tasks.c.lease_owner == self.leases.owner)
                    .values(
                        status="queued",
                        lease_owner=None,
                        lease_expires_at=None,
                        log_id=None,
                        handbacks=tasks.c.handbacks + 1,
                        error_reason=reason,
                        enqueued_at=finished if self.queued else None,
                    )
                ).rowcount
                if handed:
                    connection.execute(
                        _CLOSE_LOG,
                        {
                            "b_id": log_id,
                            "b_status": "cancelled",
                            "b_run_ms": run_ms,
                            "b_retries": retries,
                            "b_error": reason,
                            "b_finished": finished,
                        },
                    )
            if handed and self.queued:
                self.queue.enqueue(task_id, first=True)
        except Exception:
            # The process is stopping: at worst the lease runs out and the
            # task is recovered like that of a process that died.
            log.warning("could not hand task %s back", task_id, exc_info=True)

    def hand_back_held(self) -> int:
        """Hand back every task this process still runs (a stopping worker); returns how many.

        The runs may still be going in threads that are about to be stopped:
        having lost their leases, they will not close the tasks.
        """
        with self.engine.connect() as connection:
            held = connection.execute(
                select(tasks.c.id, tasks.c.log_id, tasks.c.attempts).where(
                    tasks.c.lease_owner == self.leases.owner, tasks.c.status == "running"
                )
            ).all()
        for row in held:
            if row.log_id is not None:
                self._hand_back(row.id, row.log_id, run_ms=0, retries=row.attempts - 1)
        self.release_held()
        return len(held)

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
            closed = connection.execute(
                _CLOSE_TASK,
                {
                    "b_id": task_id,
                    "b_owner": self.leases.owner,
                    "b_status": status,
                    "b_result": result,
                    "b_error": error,
                    "b_finished": finished,
                },
            ).rowcount
            if not closed:
                # Taken for dead meanwhile: the task is someone else's now.
                return self.outcome(task_id, connection)
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
            .values(
                status=status,
                error_reason=reason,
                finished_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
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

    def outcome(self, task_id: int, connection: Connection | None = None) -> TaskOutcome:
        if connection is None:
            check_id(task_id, "task")
            with database_errors(self.engine), self.engine.connect() as own:
                return self.outcome(task_id, own)
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

        A run whose process has died (its lease ran out, or its owner on this
        machine is gone) is closed at once, its log row included. Returns the
        task's outcome: ``cancelled``, or ``running`` while a live run has yet
        to stop. Raises ``NotFound`` for an unknown id and ``InvalidInput`` for
        a task that has already finished.
        """
        current = self.outcome(task_id)
        if current.finished:
            raise InvalidInput(f"task {task_id} has already finished ({current.status})")
        now = utcnow()
        with database_errors(self.engine), self.engine.begin() as connection:
            if self._finish_unrun(connection, task_id, "cancelled", "cancelled before it ran"):
                return self.outcome(task_id, connection)
            row = connection.execute(
                select(tasks.c.lease_owner, tasks.c.lease_expires_at).where(
                    tasks.c.id == task_id, tasks.c.status == "running"
                )
            ).first()
            if row is None:
                return self.outcome(task_id, connection)
            connection.execute(
                update(tasks).where(tasks.c.id == task_id).values(cancel_requested=True)
            )
            dead = (
                row.lease_owner is None
                or (row.lease_expires_at is not None and row.lease_expires_at < now)
                or owner_is_dead(row.lease_owner)
            )
        if dead:
            # Nobody will reach the next check: recover it now, as cancelled.
            self._recover_one(task_id)
        return self.outcome(task_id)

    # -- recovering -----------------------------------------------------------

    def orphans(self, limit: int | None = None) -> list[Orphan]:
        """Unfinished tasks that no live process holds (see :mod:`atlas.tasks.recovery`)."""
        with database_errors(self.engine), self.engine.connect() as connection:
            return find_orphans(connection, now=utcnow(), inline=not self.queued, limit=limit)

    def recover(self) -> RecoveryReport:
        """Take every orphan: in-process to run it (the caller runs ``resumed``), else re-send it.

        Safe to run from several processes at once: each orphan is taken once.
        """
        report = RecoveryReport()
        for orphan in self.orphans():
            self._take(orphan, report)
        return report

    def _recover_one(self, task_id: int) -> None:
        for orphan in self.orphans():
            if orphan.id == task_id:
                self._take(orphan, RecoveryReport())

    def _take(self, orphan: Orphan, report: RecoveryReport) -> None:
        inline = not self.queued
        now = utcnow()
        if inline:
            self.leases.hold()
        with database_errors(self.engine), self.engine.begin() as connection:
            final = take_orphan(
                connection,
                orphan,
                now=now,
                owner=self.leases.owner if inline else None,
                expires=self.leases.expiry(now) if inline else None,
                lease_s=self.settings.execution.lease_s,
                max_lost_runs=self.settings.execution.max_lost_runs,
            )
        if final is None:
            return
        report.types[orphan.task_type] = report.types.get(orphan.task_type, 0) + 1
        if final != "queued":
            report.closed.append(orphan.id)
            return
        report.resumed.append(orphan.id)
        if not inline:
            try:
                self._send_again(orphan.id, orphan.not_before)
            except Unavailable as exc:
                log.warning("task %s stays queued: %s", orphan.id, exc.message)

    def resend_lost_messages(self, min_age_s: float = 30.0) -> RecoveryReport:
        """With a queue: send again the queued tasks whose message the queue does not hold.

        A message is lost when a process dies between recording a task and
        sending it, or between taking the message and claiming the task.
        Tasks with a message waiting or scheduled are left alone, and a retry
        keeps its back-off. Raises ``Unavailable`` when the queue cannot be read.
        """
        report = RecoveryReport()
        if not self.queued:
            return report
        pending = self.queue.pending_task_ids()
        with database_errors(self.engine), self.engine.connect() as connection:
            lost = find_lost_messages(
                connection, now=utcnow(), min_age_s=min_age_s, pending=pending
            )
        for task_id, enqueued_at, not_before in lost:
            with database_errors(self.engine), self.engine.begin() as connection:
                # One process re-sends it, if several look at once.
                taken = connection.execute(
                    update(tasks)
                    .where(
                        tasks.c.id == task_id,
                        tasks.c.status == "queued",
                        tasks.c.lease_owner.is_(None),
                        tasks.c.enqueued_at.is_not_distinct_from(enqueued_at),
                    )
                    .values(enqueued_at=utcnow())
                ).rowcount
            if taken:
                self._send_again(task_id, not_before)
                report.resent.append(task_id)
        return report

    def resume(
        self, *, on_outcome: Callable[[TaskOutcome], None] | None = None
    ) -> tuple[RecoveryReport, list[TaskOutcome]]:
        """Take every orphan now: in-process, run each here; with a queue, send it again.

        Returns what was recovered and, in-process, the outcomes of the runs
        (follow-up tasks they submit run too, as in any command).
        """
        report = self.recover()
        if self.queued:
            resent = self.resend_lost_messages(min_age_s=5.0)
            return (
                RecoveryReport(report.resumed, report.closed, resent.resent, report.types),
                [],
            )
        self._adopted = True
        outcomes: list[TaskOutcome] = []
        try:
            for task_id in report.resumed:
                outcome = self._run_inline(task_id)
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
            self._run_deferred()
        except BaseException:
            self.release_held()
            raise
        return report, outcomes

    def close(self, wait_s: float | None = None) -> None:
        """Give the tasks running in background threads up to ``wait_s`` seconds
        (``execution.stop_grace_s``, as a stopping worker does) to finish, then stop the
        heartbeat; leases still held run out (or are recovered at once by
        the next process), so a task cut short is finished by whoever opens the library next.
        """
        grace = self.settings.execution.stop_grace_s if wait_s is None else wait_s
        deadline = time.monotonic() + grace
        for thread in list(self._background):
            thread.join(max(0.0, deadline - time.monotonic()))
        self.leases.stop()


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
