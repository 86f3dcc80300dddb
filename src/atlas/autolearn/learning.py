"""Learning gaps: corrections no rule covers yet, and rules the user keeps reverting.

Read through :mod:`atlas.feedback`'s public functions: the miner measures every
candidate pattern (support, confidence) and the rules carry their judged counts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from atlas.autolearn.insights import Insight, Suggestion
from atlas.config import Settings
from atlas.db import database_errors
from atlas.feedback import list_rules, mine_patterns

__all__ = ["RULES", "detect_learning_insights"]

#: A correction pattern is worth a word once the user made it on this many items.
MIN_ITEMS = 5
#: A rule is being reverted once this many of its applications were...
MIN_REVERTED = 3
#: ...and at least this share of its judged applications.
MIN_REVERTED_SHARE = 0.5

#: Automatic tags of a kind are nearly always removed: at least this many reviewed...
MIN_REVIEWED = 30
#: ...and the upper bound of the 95% Wilson interval of the share kept at most this.
MAX_KEPT_SHARE = 0.2

RULES = {
    "removed-kind": (
        f"at least {MIN_REVIEWED} automatic tags of a kind judged by full reviews, and the "
        f"upper bound of the 95% Wilson interval of the share the user kept at most "
        f"{MAX_KEPT_SHARE:.0%}"
    ),
    "uncovered-correction": (
        f"the same correction made on at least {MIN_ITEMS} items (and at least the miner's "
        "minimum frequency) with no rule for it; the miner's support and confidence say why"
    ),
    "reverted-rule": (
        f"an enabled rule with at least {MIN_REVERTED} applications the user reverted, "
        f"and at least {MIN_REVERTED_SHARE:.0%} of its judged applications reverted"
    ),
    "judged-off": "a rule the judge disabled for a low success rate",
}


def detect_learning_insights(settings: Settings, engine: Engine, *, now: datetime) -> list[Insight]:
    """Learning insights: uncovered corrections, reverted and judged-off rules."""
    feedback = settings.feedback
    rules = list_rules(engine)
    with database_errors(engine), engine.connect() as connection:
        mining = mine_patterns(connection, feedback, now=now)
    ruled = {rule.pattern_key for rule in rules if rule.pattern_key}
    found: list[Insight] = []
    floor = max(MIN_ITEMS, mining.min_frequency)
    for pattern in mining.patterns:
        if pattern.key in ruled or pattern.support < floor:
            continue
        if pattern.qualifies:
            why = "it qualifies; the feedback loop has not run since the corrections"
        elif pattern.confidence < mining.min_confidence:
            why = (
                f"confidence {pattern.confidence:.2f} is below the miner's minimum "
                f"{mining.min_confidence:.2f}"
            )
        else:
            why = f"support {pattern.support} is below the miner's minimum {mining.min_frequency}"
        found.append(
            Insight(
                key=f"learning:uncovered-correction:{pattern.key}",
                kind="learning",
                severity="warning" if pattern.qualifies else "info",
                statement=(
                    f"a correction made on {pattern.support} items has no rule: "
                    f"{pattern.description or pattern.rule_type} ({why})"
                ),
                rule=RULES["uncovered-correction"],
                evidence={
                    "pattern": pattern.to_dict(),
                    "min_frequency": mining.min_frequency,
                    "min_confidence": mining.min_confidence,
                    "why_no_rule": why,
                    "media_ids": pattern.examples[:10],
                },
                suggestion=Suggestion(
                    action="feedback-loop",
                    params={"pattern_keys": [pattern.key]},
                    metric="qualifying corrections with no rule",
                    baseline=1.0,
                )
                if pattern.qualifies
                else None,
            )
        )
    found += _removed_kinds(settings, engine)
    for rule in rules:
        if rule.id is None:
            continue
        if rule.enabled and rule.judged and rule.failure_count >= MIN_REVERTED:
            share = rule.failure_count / rule.judged
            if share < MIN_REVERTED_SHARE:
                continue
            found.append(
                Insight(
                    key=f"learning:reverted-rule:{rule.id}",
                    kind="learning",
                    severity="problem",
                    statement=(
                        f"rule {rule.id} is reverted by the user on {rule.failure_count} of "
                        f"{rule.judged} items: {rule.description}"
                    ),
                    rule=RULES["reverted-rule"],
                    evidence={
                        "rule_id": rule.id,
                        "reverted": rule.failure_count,
                        "kept": rule.success_count,
                        "usage_count": rule.usage_count,
                    },
                    suggestion=Suggestion(
                        action="disable-rule",
                        params={"rule_id": rule.id},
                        metric=f"enabled rules reverted by the user (rule {rule.id})",
                        baseline=1.0,
                    ),
                )
            )
        elif not rule.enabled and rule.disabled_by == "judge":
            found.append(
                Insight(
                    key=f"learning:judged-off:{rule.id}",
                    kind="learning",
                    severity="info",
                    statement=f"rule {rule.id} was disabled by the judge: {rule.disabled_reason}",
                    rule=RULES["judged-off"],
                    evidence={
                        "rule_id": rule.id,
                        "reverted": rule.failure_count,
                        "kept": rule.success_count,
                    },
                )
            )
    return found


def _removed_kinds(settings: Settings, engine: Engine) -> list[Insight]:
    """Kinds of automatic tags the user removes on nearly every full review."""
    from atlas.autolearn.tasks_detect import wilson_interval
    from atlas.tagging.cutoffs import learned_cutoffs, reviewed_tags

    reviews = reviewed_tags(engine, settings.tagging.cutoff_window)
    cutoffs = learned_cutoffs(settings.tagging, engine)
    found = []
    for kind, pairs in sorted(reviews.kinds.items()):
        kept = sum(1 for _, was_kept in pairs if was_kept)
        if len(pairs) < MIN_REVIEWED:
            continue
        low, high = wilson_interval(kept, len(pairs))
        if high > MAX_KEPT_SHARE:
            continue
        learned = cutoffs.kinds.get(kind)
        handled = learned is not None and learned.never
        found.append(
            Insight(
                key=f"learning:removed-kind:{kind}",
                kind="learning",
                severity="info" if handled else "warning",
                statement=(
                    f"you remove automatic {kind} tags on nearly every review (kept "
                    f"{kept} of {len(pairs)}); "
                    + (
                        "Atlas has learned to stop proposing them"
                        if handled
                        else "Atlas still proposes them (tagging.learn_cutoffs is off, or "
                        "their cut-off has too few reviews)"
                    )
                ),
                rule=RULES["removed-kind"],
                evidence={
                    "tag_kind": kind,
                    "reviewed": len(pairs),
                    "kept": kept,
                    "kept_share_interval": [round(low, 4), round(high, 4)],
                    "learned_cutoff": learned.cutoff if learned else None,
                },
            )
        )
    return found
