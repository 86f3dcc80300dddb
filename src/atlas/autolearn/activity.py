"""When the library is busy: the hours and weekdays media arrives and the user edits.

Each kind of event is counted per UTC hour of day and per weekday over a window.
An hour (or weekday) is busy when it holds at least ``MIN_EVENTS`` events and a
Poisson test against an even spread gives z >= ``Z_BUSY``; an insight needs
``MIN_TOTAL`` events and busy slots holding at least ``MIN_BUSY_SHARE`` of them.
Quiet hours are the hours with the fewest events of any kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from atlas.autolearn.insights import Insight
from atlas.db import database_errors
from atlas.db.tables import media, user_feedback

__all__ = ["RULES", "Activity", "detect_schedule_insights", "load_activity", "quiet_hours"]

MIN_EVENTS = 10
MIN_TOTAL = 48
Z_BUSY = 3.5
MIN_BUSY_SHARE = 0.4
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

RULES = {
    "busy-hours": (
        f"events counted per UTC hour (weekday) over the window; a slot is busy with at "
        f"least {MIN_EVENTS} events and a Poisson z >= {Z_BUSY} against an even spread; "
        f"reported with at least {MIN_TOTAL} events and busy slots holding at least "
        f"{MIN_BUSY_SHARE:.0%} of them"
    ),
}


@dataclass(frozen=True)
class Activity:
    """Event counts per hour of day (0-23) and weekday (0 = Monday), per kind of event."""

    days: int
    hours: dict[str, list[int]]
    weekdays: dict[str, list[int]]

    def busy_hours(self, kind: str) -> list[int]:
        return _busy(self.hours[kind])

    def busy_weekdays(self, kind: str) -> list[int]:
        return _busy(self.weekdays[kind])

    def to_dict(self) -> dict[str, Any]:
        return {"days": self.days, "hours": self.hours, "weekdays": self.weekdays}


def load_activity(engine: Engine, *, days: int, now: datetime) -> Activity:
    """Arrivals (media created) and edits (user feedback) in the last ``days`` days."""
    since = now - timedelta(days=days)
    with database_errors(engine), engine.connect() as connection:
        arrivals = list(
            connection.scalars(select(media.c.created_at).where(media.c.created_at >= since))
        )
        edits = list(
            connection.scalars(
                select(user_feedback.c.timestamp).where(
                    user_feedback.c.timestamp >= since, user_feedback.c.source == "user"
                )
            )
        )
    hours: dict[str, list[int]] = {}
    weekdays: dict[str, list[int]] = {}
    for kind, times in (("arrivals", arrivals), ("edits", edits)):
        per_hour, per_day = [0] * 24, [0] * 7
        for moment in times:
            per_hour[moment.hour] += 1
            per_day[moment.weekday()] += 1
        hours[kind], weekdays[kind] = per_hour, per_day
    return Activity(days=days, hours=hours, weekdays=weekdays)


def _busy(counts: list[int]) -> list[int]:
    total = sum(counts)
    if total < MIN_TOTAL:
        return []
    expected = total / len(counts)
    busy = [
        slot
        for slot, count in enumerate(counts)
        if count >= MIN_EVENTS and (count - expected) / math.sqrt(expected) >= Z_BUSY
    ]
    if sum(counts[slot] for slot in busy) < MIN_BUSY_SHARE * total:
        return []
    return busy


def quiet_hours(activity: Activity, count: int = 4) -> list[int]:
    """The ``count`` hours with the fewest events of any kind, in a row where possible.

    Picks the run of consecutive hours (wrapping at midnight) with the fewest
    events; ties go to the run starting nearest 02:00.
    """
    combined = [sum(activity.hours[kind][hour] for kind in activity.hours) for hour in range(24)]
    best: tuple[int, int, int] | None = None
    for start in range(24):
        load = sum(combined[(start + step) % 24] for step in range(count))
        distance = min(abs(start - 2), 24 - abs(start - 2))
        if best is None or (load, distance) < (best[0], best[1]):
            best = (load, distance, start)
    assert best is not None
    return [(best[2] + step) % 24 for step in range(count)]


def _ranges(slots: list[int]) -> str:
    if not slots:
        return ""
    parts, first, last = [], slots[0], slots[0]
    for slot in slots[1:]:
        if slot == last + 1:
            last = slot
            continue
        parts.append((first, last))
        first = last = slot
    parts.append((first, last))
    return ", ".join(f"{a:02d}-{b + 1:02d} h" if a != b else f"{a:02d} h" for a, b in parts)


def detect_schedule_insights(activity: Activity) -> list[Insight]:
    """Busy hours and weekdays of arrivals and edits."""
    found = []
    names = {"arrivals": "media arrives", "edits": "the user edits"}
    for kind, what in names.items():
        hours = activity.busy_hours(kind)
        days = activity.busy_weekdays(kind)
        if not hours and not days:
            continue
        parts = []
        if hours:
            parts.append(f"mostly {_ranges(hours)} UTC")
        if days:
            parts.append("on " + ", ".join(WEEKDAYS[d] for d in days))
        found.append(
            Insight(
                key=f"schedule:busy:{kind}",
                kind="schedule",
                severity="info",
                statement=f"{what} " + " and ".join(parts),
                rule=RULES["busy-hours"],
                evidence={
                    "window_days": activity.days,
                    "busy_hours": hours,
                    "busy_weekdays": [WEEKDAYS[d] for d in days],
                    "per_hour": activity.hours[kind],
                    "per_weekday": activity.weekdays[kind],
                    "events": sum(activity.hours[kind]),
                },
            )
        )
    return found
