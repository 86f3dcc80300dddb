"""The learned schedule: heavy periodic work placed in the library's quiet hours.

From the activity (:mod:`atlas.autolearn.activity`) Atlas picks the quiet hours
(the run of hours with the fewest arrivals and edits) and places there: the
autolearn cycle with its safe actions (which queues missing transcriptions, tags
and embeddings), the feedback loop, and analytics cleanup (fold and delete old
task_logs). The schedule is stored with its evidence; ``autolearn.schedule_hours``
in the settings overrides the learned hours. Jobs run only as Huey periodic
tasks of ``atlas worker``: without a worker, nothing runs behind the user's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select

from atlas.analytics import CLEANUP_TASK
from atlas.autolearn.activity import load_activity, quiet_hours
from atlas.autolearn.collect import ACTIVITY_DAYS
from atlas.autolearn.cycle import CYCLE_TASK
from atlas.config import Settings
from atlas.db import database_errors, utcnow
from atlas.db.tables import autolearn_schedule

__all__ = ["QUIET_HOURS", "Job", "Schedule", "clear_schedule", "learn_schedule", "show_schedule"]

#: Hours of quiet the heavy work is spread over.
QUIET_HOURS = 4


@dataclass(frozen=True)
class Job:
    """One periodic job: a task submitted daily at ``hour:minute`` UTC."""

    name: str
    task_type: str
    params: dict[str, Any]
    hour: int
    minute: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task_type": self.task_type,
            "params": self.params,
            "hour": self.hour,
            "minute": self.minute,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            name=str(data["name"]),
            task_type=str(data["task_type"]),
            params=dict(data.get("params") or {}),
            hour=int(data["hour"]),
            minute=int(data.get("minute", 0)),
        )


@dataclass(frozen=True)
class Schedule:
    """A schedule and where it comes from."""

    #: 'learned' (stored), 'settings' (autolearn.schedule_hours), 'proposed'
    #: (learned now, not stored) or 'default' (the daily cycle only).
    source: str
    quiet_hours: list[int]
    jobs: list[Job]
    evidence: dict[str, Any]
    created_at: datetime | None
    #: Whether tasks go to a queue that ``atlas worker`` serves.
    queued: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "quiet_hours": self.quiet_hours,
            "jobs": [job.to_dict() for job in self.jobs],
            "evidence": self.evidence,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "queued": self.queued,
        }


def _jobs(settings: Settings, hours: list[int]) -> list[Job]:
    """The heavy work, one job per quiet hour in turn."""
    work: list[tuple[str, str, dict[str, Any]]] = [
        ("autolearn-cycle", CYCLE_TASK, {"auto": True}),
        ("feedback-loop", "feedback-loop", {"mode": "full"}),
        ("analytics-cleanup", CLEANUP_TASK, {"keep_days": settings.analytics.retention_days}),
    ]
    return [
        Job(name, task_type, params, hours[index % len(hours)])
        for index, (name, task_type, params) in enumerate(work)
    ]


def _proposal(
    settings: Settings, engine: Engine, now: datetime
) -> tuple[list[int], dict[str, Any]]:
    activity = load_activity(engine, days=ACTIVITY_DAYS, now=now)
    hours = quiet_hours(activity, QUIET_HOURS)
    evidence = {
        "window_days": ACTIVITY_DAYS,
        "events_per_hour": [
            sum(activity.hours[kind][hour] for kind in activity.hours) for hour in range(24)
        ],
        "busy_arrival_hours": activity.busy_hours("arrivals"),
        "busy_edit_hours": activity.busy_hours("edits"),
        "rule": f"the {QUIET_HOURS} consecutive UTC hours with the fewest arrivals and edits",
    }
    return hours, evidence


def show_schedule(settings: Settings, engine: Engine, *, queued: bool) -> Schedule:
    """The schedule a worker runs: the settings' hours, else the learned one, else the default."""
    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(select(autolearn_schedule)).first()
    overridden = settings.autolearn.schedule_hours
    if overridden:
        return Schedule(
            "settings",
            overridden,
            _jobs(settings, overridden),
            {"rule": "autolearn.schedule_hours in the settings"},
            None,
            queued,
        )
    if row is not None:
        return Schedule(
            "learned",
            list(row.quiet_hours),
            [Job.from_dict(job) for job in row.jobs],
            dict(row.evidence),
            row.created_at,
            queued,
        )
    hour = settings.autolearn.default_cycle_hour
    return Schedule(
        "default",
        [hour],
        [Job("autolearn-cycle", CYCLE_TASK, {"auto": True}, hour)],
        {"rule": "no learned schedule: the daily autolearn cycle at autolearn.default_cycle_hour"},
        None,
        queued,
    )


def learn_schedule(
    settings: Settings,
    engine: Engine,
    *,
    queued: bool,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Schedule:
    """Learn the quiet hours from the activity and store the schedule (idempotent)."""
    now = now or utcnow()
    hours, evidence = _proposal(settings, engine, now)
    jobs = _jobs(settings, hours)
    if dry_run:
        return Schedule("proposed", hours, jobs, evidence, None, queued)
    with database_errors(engine), engine.begin() as connection:
        connection.execute(delete(autolearn_schedule))
        connection.execute(
            autolearn_schedule.insert().values(
                id=1,
                quiet_hours=hours,
                jobs=[job.to_dict() for job in jobs],
                evidence=evidence,
                created_at=now,
            )
        )
    return Schedule("learned", hours, jobs, evidence, now, queued)


def clear_schedule(engine: Engine) -> bool:
    """Forget the learned schedule; returns whether there was one."""
    with database_errors(engine), engine.begin() as connection:
        return bool(connection.execute(delete(autolearn_schedule)).rowcount)
