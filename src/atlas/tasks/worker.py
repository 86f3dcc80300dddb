"""``atlas worker``: run queued tasks until stopped, and recover what dead processes left.

Before it takes any message, a worker checks that its queue answers (else it
exits with one line and changes no task), takes back the tasks of processes
that died, and re-sends queued tasks whose message was lost. While it runs it
does the same every few seconds, so a task whose worker was killed runs again
within about one lease (``execution.lease_s``), or at once when the dead
process was on this machine. Stopped by SIGTERM or SIGINT, it lets running
tasks finish for ``execution.stop_grace_s`` and hands the rest back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from atlas.db import database_errors, utcnow
from atlas.db.tables import tasks
from atlas.errors import InvalidInput, invalid
from atlas.tasks.dispatcher import Dispatcher, RecoveryReport, TaskOutcome

__all__ = ["DailyJob", "WorkerStart", "run_daily_job", "run_worker"]

#: A daily job already submitted this recently (by another worker) is not submitted again.
DAILY_DEDUP = timedelta(hours=12)


@dataclass(frozen=True)
class DailyJob:
    """A task a worker submits every day at ``hour:minute`` UTC."""

    name: str
    task_type: str
    hour: int
    minute: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)


def _daily_runner(dispatcher: Dispatcher, job: DailyJob) -> Callable[[], object]:
    return lambda: run_daily_job(dispatcher, job)


def run_daily_job(dispatcher: Dispatcher, job: DailyJob) -> TaskOutcome | None:
    """Submit the job's task unless one was submitted for it in the last 12 hours.

    Every worker's scheduler fires the job; the first to submit it wins, so many
    workers (on many machines) still run it once a day.
    """
    since = utcnow() - DAILY_DEDUP
    with database_errors(dispatcher.engine), dispatcher.engine.connect() as connection:
        recent = connection.execute(
            select(tasks.c.params).where(
                tasks.c.task_type == job.task_type, tasks.c.created_at >= since
            )
        ).all()
    if any(dict(row.params or {}) == dict(job.params) for row in recent):
        return None
    return dispatcher.submit(job.task_type, dict(job.params))


#: How often a running worker re-sends queued tasks whose message was lost.
RESEND_EVERY_S = 20.0
#: The most a worker lowers its CPU priority (the range of ``nice``).
MAX_NICE = 19


@dataclass(frozen=True)
class WorkerStart:
    """What a worker found and did before taking messages."""

    workers: int
    kind: str
    queue_url: str
    recovered: RecoveryReport
    resent: RecoveryReport


def run_worker(
    dispatcher: Dispatcher,
    *,
    workers: int,
    threads: bool,
    on_start: Callable[[WorkerStart], None] | None = None,
    on_recovered: Callable[[RecoveryReport], None] | None = None,
    daily: Sequence[DailyJob] = (),
    nice: int = 0,
) -> int:
    """Consume the queue until stopped; returns how many running tasks were handed back.

    ``daily``: jobs the worker's scheduler submits each day (see :func:`run_daily_job`).
    ``nice``: how far the worker lowers its CPU priority (0 to 19, as ``nice``), so
    that on a busy machine an ``atlas serve`` or a command answering a person
    gets the CPU first; with CPU to spare it changes nothing.

    Raises ``InvalidInput`` without a queue and ``Unavailable`` when the queue or
    the database does not answer, before any task is touched.
    """
    if workers < 1:
        raise InvalidInput("a worker needs at least one process or thread")
    if not 0 <= nice <= MAX_NICE:
        raise invalid("nice", f"must be between 0 and {MAX_NICE}")
    if not dispatcher.queued:
        raise InvalidInput(
            "no task queue is configured, so tasks run in-process; set queue_url "
            "(e.g. ATLAS_QUEUE_URL=sqlite or redis://127.0.0.1:6379/0) to use workers"
        )
    queue = dispatcher.queue
    queue.check()
    kind = "thread" if threads else "process"
    if nice:
        # Before any task thread or process starts: each inherits it (on Linux the
        # priority is per thread, so it must be set before they are made).
        os.nice(nice)
    if not threads:
        # Each forked process opens its own database connections.
        engine = dispatcher.engine
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))

    for job in daily:
        queue.add_daily(job.name, job.hour, job.minute, _daily_runner(dispatcher, job))

    recovered = dispatcher.recover()
    resent = dispatcher.resend_lost_messages()
    if on_start is not None:
        on_start(WorkerStart(workers, kind, queue.url, recovered, resent))

    lease_s = dispatcher.settings.execution.lease_s
    next_resend = time.monotonic() + RESEND_EVERY_S

    def tick() -> None:
        nonlocal next_resend
        report = dispatcher.recover()
        if time.monotonic() >= next_resend:
            next_resend = time.monotonic() + RESEND_EVERY_S
            extra = dispatcher.resend_lost_messages(min_age_s=RESEND_EVERY_S)
            report = RecoveryReport(
                resumed=report.resumed,
                closed=report.closed,
                resent=extra.resent,
                types=report.types,
            )
        if report.total and on_recovered is not None:
            on_recovered(report)

    consumer = queue.consumer(
        workers=workers,
        worker_type=kind,
        grace_s=dispatcher.settings.execution.stop_grace_s,
        tick=tick,
        tick_every_s=min(5.0, lease_s / 3),
    )
    consumer.run()
    # Thread workers cannot be interrupted: what they still run goes back now.
    return dispatcher.hand_back_held()
