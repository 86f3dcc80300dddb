"""``run-feedback-loop``: mine the feedback, turn patterns into rules, apply the rules.

Modes: ``full`` (mine, create or update rules, apply them), ``analyze`` (mine and
show the patterns only), ``apply`` (apply the existing enabled rules). A dry run
does the same reading and planning and reports exactly what would change, writing
nothing (only the task's own log rows). Runs as the ``feedback-loop`` task, so
every run is logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from atlas.config import FeedbackSettings
from atlas.db import database_errors, utcnow
from atlas.db.tables import user_feedback
from atlas.errors import AtlasError, InvalidInput
from atlas.feedback.library import ApplyReport, apply_to_library
from atlas.feedback.patterns import MiningResult, mine_patterns
from atlas.feedback.rule_store import RuleChanges, load_rules, sync_rules
from atlas.feedback.rules import Rule
from atlas.media.words import refresh_words
from atlas.tasks import Dispatcher, TaskContext, task_type

__all__ = ["LOOP_MODES", "LoopReport", "feedback_loop", "loop_mode", "run_feedback_loop"]

LOOP_MODES = ("full", "analyze", "apply")


@dataclass
class LoopReport:
    mode: str
    dry_run: bool
    mining: MiningResult | None = None
    changes: RuleChanges | None = None
    applied: ApplyReport | None = None
    #: Rules the loop left enabled, and every rule it knows.
    enabled_rules: int = 0
    total_rules: int = 0
    #: Rules disabled for a low success rate (judged by the user's edits).
    judged_off: list[Rule] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "dry_run": self.dry_run,
            "mining": self.mining.to_dict() if self.mining else None,
            "rules": self.changes.to_dict() if self.changes else None,
            "applied": self.applied.to_dict() if self.applied else None,
            "enabled_rules": self.enabled_rules,
            "total_rules": self.total_rules,
            "judged_off": [rule.to_dict() for rule in self.judged_off or []],
        }


def loop_mode(*, analyze_only: bool, apply_rules: bool, min_frequency: int | None) -> str:
    """The mode the flags ask for; ``InvalidInput`` for flags that do not go together."""
    if analyze_only and apply_rules:
        raise InvalidInput("`analyze_only` and `apply_rules` exclude each other")
    if min_frequency is not None and min_frequency < 1:
        raise InvalidInput(f"`min_frequency` must be at least 1, got {min_frequency}")
    if apply_rules and min_frequency is not None:
        raise InvalidInput("`min_frequency` applies to mining; `apply_rules` does not mine")
    return "analyze" if analyze_only else "apply" if apply_rules else "full"


def run_feedback_loop(
    engine: Engine,
    settings: FeedbackSettings,
    *,
    mode: str = "full",
    dry_run: bool = False,
    min_frequency: int | None = None,
    move_files: bool = False,
    now: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> LoopReport:
    """One run of the loop (see the module docstring). Idempotent."""
    if mode not in LOOP_MODES:
        raise InvalidInput(f"unknown feedback loop mode {mode!r}")
    now = now or utcnow()
    report = LoopReport(mode=mode, dry_run=dry_run)
    rules: list[Rule]
    with database_errors(engine):
        if mode in ("full", "analyze") and not dry_run:
            # Items whose stored words are missing (from before they were stored)
            # or stale get them once, not at every mining (see atlas.media.words).
            with engine.begin() as connection:
                reviewed = select(user_feedback.c.media_id).distinct()
                refresh_words(connection, connection.scalars(reviewed))
        if mode in ("full", "analyze"):
            with engine.connect() as connection:
                report.mining = mine_patterns(
                    connection, settings, min_frequency=min_frequency, now=now
                )
        if mode == "analyze":
            with engine.connect() as connection:
                rules = load_rules(connection)
        elif mode == "full":
            assert report.mining is not None
            mining = report.mining
            arguments: dict[str, Any] = {
                "mined": mining.measured,
                "thresholds": (mining.min_frequency, mining.min_confidence),
                "now": now,
                "dry_run": dry_run,
                "refused": mining.refused,
            }
            candidates = [pattern.to_rule() for pattern in mining.qualifying]
            if dry_run:
                with engine.connect() as connection:
                    report.changes, rules = sync_rules(connection, candidates, **arguments)
            else:
                with engine.begin() as connection:
                    report.changes, rules = sync_rules(connection, candidates, **arguments)
        else:
            with engine.connect() as connection:
                rules = load_rules(connection)
    enabled = [rule for rule in rules if rule.enabled]
    report.enabled_rules, report.total_rules = len(enabled), len(rules)
    report.judged_off = [rule for rule in rules if rule.disabled_by == "judge"]
    if mode != "analyze":
        report.applied = apply_to_library(
            engine,
            enabled,
            dry_run=dry_run,
            move_files=move_files,
            on_progress=on_progress,
            now=now,
        )
    return report


@task_type("feedback-loop", retries=2, retry_delay_s=1.0)
def feedback_loop_task(
    ctx: TaskContext,
    mode: str = "full",
    dry_run: bool = False,
    min_frequency: int | None = None,
    move_files: bool = False,
) -> dict[str, Any]:
    """Mine feedback into rules and apply them (run-feedback-loop)."""
    report = run_feedback_loop(
        ctx.engine,
        ctx.settings.feedback,
        mode=mode,
        dry_run=dry_run,
        min_frequency=min_frequency,
        move_files=move_files,
        on_progress=lambda _n: ctx.raise_if_cancelled(),
    )
    return report.to_dict()


def feedback_loop(
    dispatcher: Dispatcher,
    *,
    analyze_only: bool = False,
    apply_rules: bool = False,
    dry_run: bool = False,
    min_frequency: int | None = None,
    move_files: bool = False,
) -> dict[str, Any]:
    """Run the loop as a ``feedback-loop`` task (waiting for it with a queue); its report.

    Raises ``InvalidInput`` for flags that do not go together (no task is made) and
    ``AtlasError`` with the task's reason when the run failed.
    """
    mode = loop_mode(
        analyze_only=analyze_only, apply_rules=apply_rules, min_frequency=min_frequency
    )
    outcome = dispatcher.submit(
        "feedback-loop",
        {
            "mode": mode,
            "dry_run": dry_run,
            "min_frequency": min_frequency,
            "move_files": move_files,
        },
    )
    if not outcome.finished:
        outcome = dispatcher.wait([outcome.task_id])[0]
    if not outcome.ok or not isinstance(outcome.result, dict):
        raise AtlasError(
            f"the feedback loop (task {outcome.task_id}) failed: {outcome.error or outcome.status}"
        )
    return {**outcome.result, "task_id": outcome.task_id}
