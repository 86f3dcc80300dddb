"""Task analytics: success rates, durations, failure reasons, bottlenecks, trends, retention.

Everything here reads what the dispatcher logs in ``task_logs`` (one row per run)
and the daily per-type summaries folded from it (``task_log_daily``).
"""

from atlas.analytics.bottlenecks import (
    BottleneckReport,
    LongRun,
    QueueLoad,
    TypeLoad,
    find_bottlenecks,
)
from atlas.analytics.cleanup import CLEANUP_TASK, CleanupReport, cleanup_task_logs, run_cleanup
from atlas.analytics.fold import DailySummary, FoldReport, fold_task_logs, read_daily_summaries
from atlas.analytics.reasons import reason_template
from atlas.analytics.summary import FailureReason, MetricsSummary, RunStats, summarise_task_metrics
from atlas.analytics.trends import (
    DEGRADING,
    IMPROVING,
    INSUFFICIENT,
    STABLE,
    DayPoint,
    HalfStats,
    Trend,
    TrendReport,
    TrendRule,
    task_trends,
)
from atlas.analytics.window import SUCCESS_RULE, DurationStats, Window, known_task_types

__all__ = [
    "CLEANUP_TASK",
    "DEGRADING",
    "IMPROVING",
    "INSUFFICIENT",
    "STABLE",
    "SUCCESS_RULE",
    "BottleneckReport",
    "CleanupReport",
    "DailySummary",
    "DayPoint",
    "DurationStats",
    "FailureReason",
    "FoldReport",
    "HalfStats",
    "LongRun",
    "MetricsSummary",
    "QueueLoad",
    "RunStats",
    "Trend",
    "TrendReport",
    "TrendRule",
    "TypeLoad",
    "Window",
    "cleanup_task_logs",
    "find_bottlenecks",
    "fold_task_logs",
    "known_task_types",
    "read_daily_summaries",
    "reason_template",
    "run_cleanup",
    "summarise_task_metrics",
    "task_trends",
]
