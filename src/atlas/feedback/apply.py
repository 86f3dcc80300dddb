"""Rules at tagging time: the automatic tagger calls :func:`apply_rules` with each new
prediction set of an item, inside the transaction that stores the tags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection

from atlas.db import check_id, utcnow
from atlas.errors import NotFound
from atlas.feedback.applications import (
    RuleResult,
    application_state,
    record_tag_effects,
)
from atlas.feedback.context import (
    load_contexts,
)
from atlas.feedback.engine import (
    RuleIndex,
    plan_tag_effects,
)
from atlas.feedback.rule_store import load_rules
from atlas.feedback.rules import TAG_RULE_TYPES
from atlas.media.tags import Tag

__all__ = [
    "apply_rules",
    "tag_rule_index",
]


# --- for the tagger ----------------------------------------------------------------


def apply_rules(
    connection: Connection,
    media_id: int,
    predictions: Sequence[Tag],
    *,
    rules: RuleIndex | None = None,
    now: datetime | None = None,
) -> RuleResult:
    """Apply the enabled tag rules to a new prediction set of one item.

    Call it inside the transaction that stores the item's new automatic tags, and
    store exactly the returned tags (``upsert_tags``; predictions come back as given,
    rule tags with source ``rule``). What it guarantees:

    * predictions the user removed from this item before (rejections) are dropped;
    * predictions of tags the user (or a rule) already set are left to that tag;
    * rules change only automatic tags, never add a rejected tag, and a rule the
      user reversed on this item does not act on it again;
    * each rule that changes the prediction set is recorded as an application
      (``via`` ``tagger``) and counted in ``usage_count``; when the same rule already
      has a live application on this item (an earlier tagging), none is added.

    ``rules``: a prepared :class:`RuleIndex` to reuse over a batch (else loaded).
    Raises ``NotFound`` for an unknown item.
    """
    now = now or utcnow()
    check_id(media_id)
    context = load_contexts(connection, [media_id]).get(media_id)
    if context is None:
        raise NotFound(f"no media with id {media_id}")
    index = rules if rules is not None else tag_rule_index(connection)
    live, blocked = application_state(connection, [media_id])

    working = {norm: state for norm, state in context.tags.items() if state.source != "auto"}
    predicted: dict[str, Tag] = {}
    for tag in predictions:
        norm = tag.norm
        if not norm or norm in context.rejected or norm in working or norm in predicted:
            continue
        predicted[norm] = tag if tag.source == "auto" else replace(tag, source="auto")
    working.update(predicted)
    effects = plan_tag_effects(index, context, working, blocked=blocked.get(media_id, set()))

    removed = {state.norm for effect in effects for state in effect.removed}
    result = [state for norm, state in predicted.items() if norm not in removed]
    result += [state for effect in effects for state in effect.added]
    recorded = record_tag_effects(connection, context, effects, live, via="tagger", now=now)
    return RuleResult(result, recorded)


def tag_rule_index(connection: Connection) -> RuleIndex:
    """The enabled tag rules, ready for :func:`apply_rules` over a batch of items."""
    return RuleIndex(load_rules(connection, enabled_only=True, types=TAG_RULE_TYPES))
