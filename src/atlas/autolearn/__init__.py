"""Autolearn: insights with evidence, recommendations that act and are judged.

Detectors read what Atlas already records (task analytics, feedback and rules,
coverage of transcripts, tags and vectors, the library's vectors, activity) and
make :class:`Insight` objects; actionable ones become stored recommendations
(:mod:`~atlas.autolearn.recommendations`) that are applied as tasks
(:mod:`~atlas.autolearn.apply`) and judged by the next cycle
(:mod:`~atlas.autolearn.cycle`).
"""

from atlas.autolearn.actions import ACTION_KINDS, SAFE_ACTIONS, check_action, describe_action
from atlas.autolearn.activity import Activity, load_activity, quiet_hours
from atlas.autolearn.apply import APPLY_TASK, ApplyResult, apply_recommendation, start_apply
from atlas.autolearn.collect import InsightReport, collect_insights
from atlas.autolearn.cycle import CYCLE_TASK, last_run, run_autolearn, run_cycle
from atlas.autolearn.insights import INSIGHT_KINDS, SEVERITIES, Insight, Suggestion
from atlas.autolearn.plan import PlanReport, plan_with_llm
from atlas.autolearn.recommendations import (
    Recommendation,
    SyncReport,
    blocked_kinds,
    dismiss_recommendation,
    judge_applied,
    list_recommendations,
    sync_recommendations,
)
from atlas.autolearn.schedule import (
    Job,
    Schedule,
    clear_schedule,
    learn_schedule,
    show_schedule,
)

__all__ = [
    "ACTION_KINDS",
    "APPLY_TASK",
    "CYCLE_TASK",
    "INSIGHT_KINDS",
    "SAFE_ACTIONS",
    "SEVERITIES",
    "Activity",
    "ApplyResult",
    "Insight",
    "InsightReport",
    "Job",
    "PlanReport",
    "Recommendation",
    "Schedule",
    "Suggestion",
    "SyncReport",
    "apply_recommendation",
    "blocked_kinds",
    "check_action",
    "clear_schedule",
    "collect_insights",
    "describe_action",
    "dismiss_recommendation",
    "judge_applied",
    "last_run",
    "learn_schedule",
    "list_recommendations",
    "load_activity",
    "plan_with_llm",
    "quiet_hours",
    "run_autolearn",
    "run_cycle",
    "show_schedule",
    "start_apply",
    "sync_recommendations",
]
