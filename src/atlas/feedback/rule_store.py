"""Storing rules in ``learning_rules``: reading, enabling by hand, scoring, syncing with mining."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from atlas.config import FeedbackSettings
from atlas.db import check_id, database_errors, utcnow
from atlas.db.tables import learning_rules
from atlas.errors import NotFound
from atlas.feedback.rules import Rule

__all__ = [
    "RuleChanges",
    "get_rule",
    "list_rules",
    "load_rules",
    "score_rule",
    "set_rule_enabled",
    "sync_rules",
]


def load_rules(
    connection: Connection,
    *,
    enabled_only: bool = False,
    types: Sequence[str] | None = None,
) -> list[Rule]:
    query = select(learning_rules).order_by(learning_rules.c.id)
    if enabled_only:
        query = query.where(learning_rules.c.enabled.is_(True))
    if types is not None:
        query = query.where(learning_rules.c.rule_type.in_(list(types)))
    return [Rule.from_row(row) for row in connection.execute(query)]


def list_rules(engine: Engine) -> list[Rule]:
    """Every rule, oldest first."""
    with database_errors(engine), engine.connect() as connection:
        return load_rules(connection)


def get_rule(connection: Connection, rule_id: int, *, for_update: bool = False) -> Rule:
    """One rule; raises ``NotFound``."""
    check_id(rule_id, "rule", hint="see: atlas rules list")
    query = select(learning_rules).where(learning_rules.c.id == rule_id)
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"no rule with id {rule_id}; see: atlas rules list")
    return Rule.from_row(row)


def set_rule_enabled(
    engine: Engine, rule_id: int, enabled: bool, *, reason: str | None = None
) -> Rule:
    """Enable or disable a rule by hand; a user's choice sticks until changed by the user."""
    with database_errors(engine), engine.begin() as connection:
        get_rule(connection, rule_id, for_update=True)
        values: dict[str, Any] = {"enabled": enabled, "updated_at": utcnow()}
        if enabled:
            values.update(disabled_by=None, disabled_reason=None)
        else:
            values.update(disabled_by="user", disabled_reason=reason or "disabled by the user")
        connection.execute(
            update(learning_rules).where(learning_rules.c.id == rule_id).values(**values)
        )
        return get_rule(connection, rule_id)


def score_rule(
    connection: Connection,
    settings: FeedbackSettings,
    rule_id: int,
    *,
    kept: int = 0,
    reverted: int = 0,
    now: datetime,
) -> str | None:
    """Count judged applications; disable the rule when its success rate is too low.

    Returns the reason when this call disabled the rule.
    """
    rule = get_rule(connection, rule_id, for_update=True)
    successes = max(0, rule.success_count + kept)
    failures = max(0, rule.failure_count + reverted)
    judged = successes + failures
    rate = successes / judged if judged else None
    values: dict[str, Any] = {
        "success_count": successes,
        "failure_count": failures,
        "success_rate": rate if rate is not None else 0.0,
        "updated_at": now,
    }
    reason = None
    if (
        rule.enabled
        and rate is not None
        and reverted > 0
        and judged >= settings.min_judged
        and rate < settings.disable_below
    ):
        reason = (
            f"disabled automatically: only {successes} of {judged} judged applications were "
            f"kept (success rate {rate:.2f} < {settings.disable_below:.2f})"
        )
        values.update(enabled=False, disabled_by="judge", disabled_reason=reason)
    connection.execute(
        update(learning_rules).where(learning_rules.c.id == rule_id).values(**values)
    )
    return reason


@dataclass
class RuleChanges:
    created: list[Rule] = field(default_factory=list)
    updated: list[Rule] = field(default_factory=list)
    reenabled: list[Rule] = field(default_factory=list)
    disabled: list[Rule] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            name: [rule.to_dict() for rule in getattr(self, name)]
            for name in ("created", "updated", "reenabled", "disabled")
        }


def sync_rules(
    connection: Connection,
    candidates: Sequence[Rule],
    *,
    mined: Mapping[str, tuple[int, float]],
    thresholds: tuple[int, float],
    now: datetime,
    dry_run: bool = False,
    refused: Mapping[str, str] | None = None,
) -> tuple[RuleChanges, list[Rule]]:
    """Make the stored rules agree with the qualifying patterns (``candidates``).

    A pattern already stored (same ``pattern_key``) updates its rule; a new one is
    inserted. A rule disabled because the evidence had faded is enabled again when
    the pattern qualifies again; one disabled by the user or for a low success rate
    stays disabled. A learned rule whose pattern no longer qualifies is disabled with
    the reason. ``mined``: key -> (support, confidence) of every pattern mined,
    qualifying or not; ``refused``: key -> why a pattern over both thresholds was
    refused (its corrections contradict each other). Returns the changes and every
    rule as it stands afterwards (new ones have ``id`` ``None`` in a dry run).
    """
    existing = {rule.pattern_key: rule for rule in load_rules(connection) if rule.pattern_key}
    changes = RuleChanges()
    qualifying = set()
    for candidate in candidates:
        key = candidate.pattern_key
        assert key is not None
        qualifying.add(key)
        current = existing.get(key)
        if current is None:
            if not dry_run:
                candidate.id = _insert_rule(connection, candidate, now)
            candidate.created_at = candidate.updated_at = now
            existing[key] = candidate
            changes.created.append(candidate)
            continue
        evidence_changed = (
            current.support != candidate.support
            or current.observed != candidate.observed
            or abs(current.confidence - candidate.confidence) > 1e-9
            or current.action != candidate.action
        )
        reenable = not current.enabled and current.disabled_by == "evidence"
        for name in ("condition", "action", "confidence", "support", "observed", "examples"):
            setattr(current, name, getattr(candidate, name))
        current.description = candidate.description
        if reenable:
            current.enabled, current.disabled_by, current.disabled_reason = True, None, None
            changes.reenabled.append(current)
        elif evidence_changed:
            changes.updated.append(current)
        if (evidence_changed or reenable) and not dry_run:
            current.updated_at = now
            _update_rule(connection, current)
    min_support, min_confidence = thresholds
    for key, rule in existing.items():
        if key in qualifying or not rule.enabled or not rule.created_from_feedback:
            continue
        support, confidence = mined.get(key, (0, 0.0))
        if refused and key in refused:
            reason = refused[key]
        elif key in mined and support >= min_support and confidence >= min_confidence:
            reason = "a stronger rule now covers the same case"
        elif key in mined:
            reason = (
                f"the feedback no longer supports it: support {support} (needs {min_support}), "
                f"confidence {confidence:.2f} (needs {min_confidence:.2f})"
            )
        else:
            reason = (
                f"the feedback no longer supports it (fewer than {min_support} corrections, "
                f"or a confidence under {min_confidence:.2f})"
            )
        rule.enabled, rule.disabled_by, rule.disabled_reason = False, "evidence", reason
        changes.disabled.append(rule)
        if not dry_run:
            rule.updated_at = now
            _update_rule(connection, rule)
    return changes, list(existing.values())


def _insert_rule(connection: Connection, rule: Rule, now: datetime) -> int:
    return int(
        connection.execute(
            insert(learning_rules)
            .values(
                rule_type=rule.rule_type,
                condition_text=json.dumps(rule.condition, ensure_ascii=False),
                action_text=json.dumps(rule.action, ensure_ascii=False),
                confidence=rule.confidence,
                created_from_feedback=True,
                usage_count=0,
                success_rate=None,
                created_at=now,
                updated_at=now,
                pattern_key=rule.pattern_key,
                description=rule.description,
                support=rule.support,
                observed=rule.observed,
                examples=rule.examples,
                enabled=True,
                success_count=0,
                failure_count=0,
            )
            .returning(learning_rules.c.id)
        ).scalar_one()
    )


def _update_rule(connection: Connection, rule: Rule) -> None:
    connection.execute(
        update(learning_rules)
        .where(learning_rules.c.id == rule.id)
        .values(
            condition_text=json.dumps(rule.condition, ensure_ascii=False),
            action_text=json.dumps(rule.action, ensure_ascii=False),
            confidence=rule.confidence,
            description=rule.description,
            support=rule.support,
            observed=rule.observed,
            examples=rule.examples,
            enabled=rule.enabled,
            disabled_by=rule.disabled_by,
            disabled_reason=rule.disabled_reason,
            updated_at=rule.updated_at,
        )
    )
