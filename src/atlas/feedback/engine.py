"""The rule engine: evaluating a condition on an item, and what a rule would change.

:class:`RuleIndex` files the enabled rules by a fact their condition cannot hold
without (a tag, a genre, a word, a folder, a media type), so each item only tests
the rules that may hold. :func:`plan_tag_effects`, :func:`genre_effect` and
:func:`move_effect` say what rules would do to one item; they change nothing.
Tag actions only ever touch automatic tags, and never add a tag the user removed
from that item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from atlas.errors import InvalidInput
from atlas.feedback.context import MediaContext, normalise_genre
from atlas.feedback.rules import GENRE_RULE_TYPES, MOVE_RULE_TYPES, TAG_RULE_TYPES, Rule
from atlas.media.tags import Tag

__all__ = [
    "RuleIndex",
    "TagEffect",
    "evaluate",
    "genre_effect",
    "move_effect",
    "plan_tag_effects",
]


def evaluate(
    condition: Mapping[str, Any],
    context: MediaContext,
    tags: Mapping[str, Tag],
    initial: Mapping[str, Tag] | None = None,
) -> bool:
    """Whether ``condition`` holds for the item.

    ``tags``: its tags as they stand now. ``initial``: as they stood before any rule
    acted in this pass; a ``has_tag`` clause without ``sources`` is a context (the
    item was tagged so, as mining saw it) and is tested against it, while the tag
    a rule acts on (``has_tag`` with ``sources``, ``lacks_tag``) is tested as it is now.
    """
    if "all" in condition:
        return all(evaluate(part, context, tags, initial) for part in condition["all"])
    if "any" in condition:
        return any(evaluate(part, context, tags, initial) for part in condition["any"])
    if "not" in condition:
        return not evaluate(condition["not"], context, tags, initial)
    if "has_tag" in condition:
        sources = condition.get("sources")
        looked_up = tags if sources is not None or initial is None else initial
        state = looked_up.get(condition["has_tag"])
        if state is None:
            return False
        return sources is None or state.source in sources
    if "lacks_tag" in condition:
        return condition["lacks_tag"] not in tags
    if "genre" in condition:
        return context.genre_norm == condition["genre"]
    if "media_type" in condition:
        return context.media_type == condition["media_type"]
    if "in_folder" in condition:
        return context.folder == condition["in_folder"]
    if "word" in condition:
        return condition["word"] in context.words
    raise InvalidInput(f"unknown rule condition {json.dumps(dict(condition))[:80]}")


def _anchor(condition: Mapping[str, Any]) -> tuple[str, str] | None:
    """A fact the condition cannot hold without: used to skip rules quickly.

    The rarest kind of fact the condition names: a tag, then a word, a genre, a
    folder, and last the media type (which most items of a library share).
    """
    clauses = condition.get("all", [condition])
    for name, kind in _ANCHORS:
        for clause in clauses:
            if clause.get(name) is not None:
                return (kind, clause[name])
    return None


_ANCHORS = (
    ("has_tag", "tag"),
    ("word", "word"),
    ("genre", "genre"),
    ("in_folder", "folder"),
    ("media_type", "type"),
)


def _features(context: MediaContext, tags: Iterable[str]) -> set[tuple[str, str]]:
    features = {("tag", norm) for norm in tags}
    features.update(("word", word) for word in context.words)
    if context.genre_norm:
        features.add(("genre", context.genre_norm))
    if context.folder:
        features.add(("folder", context.folder))
    features.add(("type", context.media_type))
    return features


class RuleIndex:
    """Enabled rules by the fact they need, so each item only tests rules that may hold."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.by_anchor: dict[tuple[str, str], list[Rule]] = {}
        self.unanchored: list[Rule] = []
        self.rules: list[Rule] = sorted((r for r in rules if r.enabled), key=lambda r: r.sort_key)
        for rule in self.rules:
            anchor = _anchor(rule.condition)
            if anchor is None:
                self.unanchored.append(rule)
            else:
                self.by_anchor.setdefault(anchor, []).append(rule)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def uses_words(self) -> bool:
        """Whether any rule tests the words of an item's texts (else they need not be read)."""
        return any(kind == "word" for kind, _value in self.by_anchor)

    def candidates(self, context: MediaContext, tags: Iterable[str]) -> list[Rule]:
        found = list(self.unanchored)
        for feature in _features(context, tags) & self.by_anchor.keys():
            found.extend(self.by_anchor[feature])
        return sorted(found, key=lambda r: r.sort_key)


@dataclass(frozen=True)
class TagEffect:
    """What one rule does to one item's tags."""

    rule: Rule
    removed: tuple[Tag, ...]
    added: tuple[Tag, ...]


def plan_tag_effects(
    index: RuleIndex,
    context: MediaContext,
    tags: Mapping[str, Tag],
    *,
    blocked: set[int] | frozenset[int] = frozenset(),
) -> list[TagEffect]:
    """The tag rules that act on this item, in order, each seeing the previous ones' result.

    ``tags``: the item's tags (predictions as ``auto``); ``blocked``: rules the user
    already reversed on this item (they never act on it again).
    """
    working = dict(tags)
    effects: list[TagEffect] = []
    for rule in index.candidates(context, working):
        if rule.rule_type not in TAG_RULE_TYPES or (rule.id is not None and rule.id in blocked):
            continue
        if not evaluate(rule.condition, context, working, tags):
            continue
        effect = _tag_effect(rule, context, working)
        if effect is None:
            continue
        for state in effect.removed:
            working.pop(state.norm, None)
        for state in effect.added:
            working[state.norm] = state
        effects.append(effect)
    return effects


def _tag_effect(rule: Rule, context: MediaContext, working: Mapping[str, Tag]) -> TagEffect | None:
    action = rule.action
    op = action["op"]
    if op in ("replace_tag", "remove_tag"):
        old = working.get(action["from"] if op == "replace_tag" else action["tag"])
        if old is None or old.source != "auto":
            return None  # only automatic tags are ever changed
        if op == "remove_tag":
            return TagEffect(rule, (old,), ())
        new_norm = action["to"]
        if new_norm in context.rejected:
            return None
        if new_norm in working:
            return TagEffect(rule, (old,), ())
        return TagEffect(rule, (old,), (_rule_tag(rule, action["display"], new_norm, old.kind),))
    if op == "add_tag":
        norm = action["tag"]
        if norm in working or norm in context.rejected:
            return None
        return TagEffect(rule, (), (_rule_tag(rule, action["display"], norm, action.get("kind")),))
    return None


def _rule_tag(rule: Rule, display: str, norm: str, kind: str | None) -> Tag:
    return Tag(
        tag=display,
        norm=norm,
        kind=kind if kind in ("genre", "topic", "keyword") else "topic",
        source="rule",
        confidence=max(0.0, min(1.0, round(rule.confidence, 4))),
        explanation=f"learned {rule.label} ({rule.rule_type}, confidence {rule.confidence:.2f})",
    )


def genre_effect(
    index: RuleIndex, context: MediaContext, *, blocked: set[int] | frozenset[int] = frozenset()
) -> tuple[Rule, str] | None:
    """The first genre rule that changes this item's genre, and the new genre."""
    if context.genre_protected:
        return None
    for rule in index.candidates(context, context.tags):
        if rule.rule_type not in GENRE_RULE_TYPES or (rule.id is not None and rule.id in blocked):
            continue
        if evaluate(rule.condition, context, context.tags):
            new = rule.action["to"]
            if normalise_genre(new) != context.genre_norm:
                return rule, new
    return None


def move_effect(
    index: RuleIndex, context: MediaContext, *, blocked: set[int] | frozenset[int] = frozenset()
) -> tuple[Rule, str] | None:
    """The first organisation rule that would move this item's file, and where to."""
    if context.user_moved or not context.path or context.origin != "file":
        return None
    for rule in index.candidates(context, context.tags):
        if rule.rule_type not in MOVE_RULE_TYPES or (rule.id is not None and rule.id in blocked):
            continue
        folder = rule.action["folder"]
        if folder != context.folder and evaluate(rule.condition, context, context.tags):
            return rule, folder
    return None
