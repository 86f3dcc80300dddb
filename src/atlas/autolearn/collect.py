"""Run every detector once and gather the insights (read-only)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from atlas.autolearn.activity import Activity, detect_schedule_insights, load_activity
from atlas.autolearn.clusters import cluster_snapshot, detect_cluster_insights
from atlas.autolearn.coverage import CoverageState, coverage_state, detect_coverage_insights
from atlas.autolearn.insights import Insight, check_kind
from atlas.autolearn.learning import detect_learning_insights
from atlas.autolearn.library import detect_library_insights, recorded_vectors
from atlas.autolearn.tasks_detect import detect_task_insights
from atlas.config import Settings
from atlas.db import utcnow
from atlas.errors import InvalidInput

__all__ = ["ACTIVITY_DAYS", "InsightReport", "collect_insights"]

#: Activity patterns are learned over four weeks.
ACTIVITY_DAYS = 28
MAX_DAYS = 365
_SEVERITY_ORDER = {"problem": 0, "warning": 1, "info": 2}


@dataclass
class InsightReport:
    insights: list[Insight]
    days: int
    coverage: CoverageState
    activity: Activity
    clustering: dict[str, Any] | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "seconds": round(self.seconds, 3),
            "insights": [insight.to_dict() for insight in self.insights],
        }


def collect_insights(
    settings: Settings,
    engine: Engine,
    *,
    kind: str | None = None,
    days: int = 7,
    now: datetime | None = None,
    previous_clusters: dict[str, Any] | None = None,
) -> InsightReport:
    """Every insight the detectors support now; ``kind`` keeps one kind, ``days`` the window.

    ``previous_clusters``: the clustering the last cycle saw (cluster changes are
    judged against it). Read-only. Raises ``InvalidInput`` for an unknown kind or a
    bad window.
    """
    check_kind(kind)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"the window must be 1 to {MAX_DAYS} days, got {days!r}")
    now = now or utcnow()
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, call: Any) -> Any:
        clock = time.perf_counter()
        value = call()
        timings[name] = round(time.perf_counter() - clock, 3)
        return value

    found: list[Insight] = []
    # The three costly reads overlap: the task log (SQL), the coverage (documents
    # of every item) and the stored vectors (the vector store).
    with ThreadPoolExecutor(max_workers=3) as pool:
        tasks_job = pool.submit(
            timed, "tasks", lambda: detect_task_insights(settings, engine, days=days, now=now)
        )
        coverage_job = pool.submit(
            timed, "coverage", lambda: coverage_state(settings, engine, now=now)
        )
        vectors_job = pool.submit(timed, "vectors", lambda: recorded_vectors(settings, engine))
        found += tasks_job.result()
        coverage = coverage_job.result()
        vectors = vectors_job.result()
    found += detect_coverage_insights(coverage)
    found += timed("learning", lambda: detect_learning_insights(settings, engine, now=now))
    current = set(coverage.embedded_current)
    vectors = {media_id: v for media_id, v in vectors.items() if media_id in current}
    found += timed("library", lambda: detect_library_insights(engine, vectors))
    clustering = cluster_snapshot(engine, coverage.model)
    found += detect_cluster_insights(previous_clusters, clustering)
    activity = timed("activity", lambda: load_activity(engine, days=ACTIVITY_DAYS, now=now))
    found += detect_schedule_insights(activity)
    if kind is not None:
        found = [insight for insight in found if insight.kind == kind]
    found.sort(key=lambda i: (_SEVERITY_ORDER[i.severity], i.kind, i.key))
    return InsightReport(
        insights=found,
        days=days,
        coverage=coverage,
        activity=activity,
        clustering=clustering,
        seconds=time.perf_counter() - started,
        timings=timings,
    )
