"""Learned rules: structured conditions and actions, the engine that evaluates them, storage.

A rule is stored in ``learning_rules`` with JSON in ``condition_text`` and
``action_text``. Conditions are tested against a :class:`MediaContext`:

``{"all": [C, ...]}``, ``{"any": [C, ...]}``, ``{"not": C}`` combine clauses;
``{"has_tag": NORM, "sources": ["auto"]}`` (sources optional: any),
``{"lacks_tag": NORM}``, ``{"genre": NORM}`` (``null``: no genre),
``{"media_type": "video"}``, ``{"in_folder": "/abs/folder"}`` (the file's folder),
``{"word": "dragon"}`` (a content word of title, description or transcript).

Actions: ``{"op": "replace_tag", "from": NORM, "to": NORM, "display": ...}``,
``{"op": "remove_tag", "tag": NORM}``, ``{"op": "add_tag", "tag": NORM, "display": ...,
"kind": ...}``, ``{"op": "set_genre", "to": GENRE}``, ``{"op": "move_to_folder",
"folder": PATH}``. Tag actions only ever touch automatic tags, and never add a tag
the user removed from that item.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from atlas.config import FeedbackSettings
from atlas.db import check_id, database_errors, utcnow
from atlas.db.tables import learning_rules
from atlas.errors import InvalidInput, NotFound
from atlas.feedback.context import MediaContext, TagState, normalise_genre

__all__ = [
    "GENRE_RULE_TYPES",
    "MOVE_RULE_TYPES",
    "RULE_TYPES",
    "TAG_RULE_TYPES",
    "Rule",
    "RuleChanges",
    "RuleIndex",
    "TagEffect",
    "describe",
    "evaluate",
    "genre_effect",
    "get_rule",
    "list_rules",
    "load_rules",
    "move_effect",
    "pattern_key",
    "plan_tag_effects",
    "score_rule",
    "set_rule_enabled",
    "sync_rules",
    "validate_rule",
]

TAG_RULE_TYPES = ("tag_mapping", "tag_removal", "tag_addition")
GENRE_RULE_TYPES = ("genre_correction", "metadata_enhancement")
MOVE_RULE_TYPES = ("file_organisation",)
#: Also the order in which rules act on one item: replace before remove before add.
RULE_TYPES = TAG_RULE_TYPES + GENRE_RULE_TYPES + MOVE_RULE_TYPES
_ORDER = {name: index for index, name in enumerate(RULE_TYPES)}
_CLAUSES = ("has_tag", "lacks_tag", "genre", "media_type", "in_folder", "word")
_ACTIONS = {
    "tag_mapping": "replace_tag",
    "tag_removal": "remove_tag",
    "tag_addition": "add_tag",
    "genre_correction": "set_genre",
    "metadata_enhancement": "set_genre",
    "file_organisation": "move_to_folder",
}


@dataclass
class Rule:
    id: int | None
    rule_type: str
    condition: dict[str, Any]
    action: dict[str, Any]
    confidence: float
    description: str = ""
    support: int = 0
    observed: int = 0
    examples: list[int] = field(default_factory=list)
    pattern_key: str | None = None
    enabled: bool = True
    disabled_by: str | None = None
    disabled_reason: str | None = None
    usage_count: int = 0
    success_count: int = 0
    failure_count: int = 0
    success_rate: float | None = None
    created_from_feedback: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def judged(self) -> int:
        return self.success_count + self.failure_count

    @property
    def sort_key(self) -> tuple[int, float, int, int]:
        return (_ORDER[self.rule_type], -self.confidence, -self.support, self.id or 0)

    @property
    def label(self) -> str:
        return f"rule {self.id}" if self.id is not None else "new rule"

    @property
    def takes_away(self) -> str | None:
        """The automatic tag this rule takes off every item it is predicted on, if any.

        That is a removal or a mapping whose only condition is the tag itself.
        """
        if self.rule_type not in ("tag_removal", "tag_mapping"):
            return None
        clauses = self.condition.get("all")
        if not isinstance(clauses, list) or len(clauses) != 1:
            return None
        tag = clauses[0].get("has_tag")
        if clauses[0] != {"has_tag": tag, "sources": ["auto"]}:
            return None
        name = "tag" if self.rule_type == "tag_removal" else "from"
        return tag if self.action.get(name) == tag else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule_type": self.rule_type,
            "description": self.description,
            "condition": self.condition,
            "action": self.action,
            "confidence": round(self.confidence, 4),
            "support": self.support,
            "observed": self.observed,
            "examples": self.examples,
            "enabled": self.enabled,
            "disabled_by": self.disabled_by,
            "disabled_reason": self.disabled_reason,
            "usage_count": self.usage_count,
            "success_count": self.success_count,
            "failure_count": self.failure_count,
            "success_rate": self.success_rate,
            "created_from_feedback": self.created_from_feedback,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    @classmethod
    def from_row(cls, row: Any) -> Rule:
        return cls(
            id=row.id,
            rule_type=row.rule_type,
            condition=json.loads(row.condition_text),
            action=json.loads(row.action_text),
            confidence=row.confidence,
            description=row.description or "",
            support=row.support or 0,
            observed=row.observed or 0,
            examples=list(row.examples or []),
            pattern_key=row.pattern_key,
            enabled=bool(row.enabled),
            disabled_by=row.disabled_by,
            disabled_reason=row.disabled_reason,
            usage_count=row.usage_count or 0,
            success_count=row.success_count or 0,
            failure_count=row.failure_count or 0,
            success_rate=row.success_rate if (row.success_count or row.failure_count) else None,
            created_from_feedback=bool(row.created_from_feedback),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


# --- validation ----------------------------------------------------------------


def validate_rule(rule_type: str, condition: Any, action: Any) -> None:
    """Raise ``InvalidInput`` unless the condition and action are well-formed."""
    if rule_type not in _ACTIONS:
        raise InvalidInput(f"unknown rule type {rule_type!r}")
    _validate_condition(condition)
    if not isinstance(action, dict) or action.get("op") != _ACTIONS[rule_type]:
        raise InvalidInput(f"a {rule_type} rule needs the action op {_ACTIONS[rule_type]!r}")
    needed = {
        "replace_tag": ("from", "to", "display"),
        "remove_tag": ("tag",),
        "add_tag": ("tag", "display"),
        "set_genre": ("to",),
        "move_to_folder": ("folder",),
    }[action["op"]]
    for key in needed:
        if not isinstance(action.get(key), str) or not action[key]:
            raise InvalidInput(f"the action {action['op']!r} needs a non-empty {key!r}")


def _validate_condition(condition: Any) -> None:
    if not isinstance(condition, dict) or len(condition) == 0:
        raise InvalidInput(f"a rule condition must be a JSON object, got {condition!r}")
    if "all" in condition or "any" in condition:
        parts = condition.get("all", condition.get("any"))
        if not isinstance(parts, list):
            raise InvalidInput("'all' and 'any' take a list of conditions")
        for part in parts:
            _validate_condition(part)
        return
    if "not" in condition:
        _validate_condition(condition["not"])
        return
    clause = next((name for name in _CLAUSES if name in condition), None)
    if clause is None:
        raise InvalidInput(f"unknown rule condition {json.dumps(condition)[:80]}")
    value = condition[clause]
    if not (isinstance(value, str) or (clause == "genre" and value is None)):
        raise InvalidInput(f"the condition {clause!r} needs a text value")


# --- the engine ------------------------------------------------------------------


def evaluate(
    condition: Mapping[str, Any],
    context: MediaContext,
    tags: Mapping[str, TagState],
    initial: Mapping[str, TagState] | None = None,
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
    """A fact the condition cannot hold without: used to skip rules quickly."""
    for clause in condition.get("all", [condition]):
        if "has_tag" in clause:
            return ("tag", clause["has_tag"])
        if clause.get("genre") is not None:
            return ("genre", clause["genre"])
        for name, kind in (("word", "word"), ("in_folder", "folder"), ("media_type", "type")):
            if name in clause:
                return (kind, clause[name])
    return None


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
    removed: tuple[TagState, ...]
    added: tuple[TagState, ...]


def plan_tag_effects(
    index: RuleIndex,
    context: MediaContext,
    tags: Mapping[str, TagState],
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


def _tag_effect(
    rule: Rule, context: MediaContext, working: Mapping[str, TagState]
) -> TagEffect | None:
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


def _rule_tag(rule: Rule, display: str, norm: str, kind: str | None) -> TagState:
    return TagState(
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


# --- words ---------------------------------------------------------------------------


def describe(
    rule_type: str,
    condition: Mapping[str, Any],
    action: Mapping[str, Any],
    *,
    support: int,
    observed: int,
    confidence: float,
    examples: Sequence[int],
) -> str:
    """The rule in plain words with its evidence."""
    what, scope = _words(rule_type, condition, action)
    text = (
        f"{what}: {support} of {observed} {scope} (support {support}, confidence {confidence:.2f})"
    )
    if examples:
        text += "; e.g. media " + ", ".join(str(media_id) for media_id in examples[:3])
    return text


def _words(
    rule_type: str, condition: Mapping[str, Any], action: Mapping[str, Any]
) -> tuple[str, str]:
    clauses = list(condition.get("all", [condition]))
    context = next(
        (c for c in clauses if not ("has_tag" in c and c.get("sources")) and "lacks_tag" not in c),
        None,
    )
    if rule_type == "tag_mapping":
        source = action.get("from_display") or action["from"]
        return (
            f"'{source}' is replaced by '{action['display']}'",
            f"items where Atlas predicted '{source}'",
        )
    if rule_type == "tag_removal":
        name = action.get("display") or action["tag"]
        when, where = _context_words(context)
        return (
            f"'{name}' is removed{when}",
            f"items{where} where Atlas predicted '{name}' or you added it",
        )
    if rule_type == "tag_addition":
        when, where = _context_words(context)
        scope = f"reviewed items{where}" if where else "reviewed items"
        return f"'{action['display']}' is added{when or ' to every item'}", scope
    if rule_type == "genre_correction":
        old = action.get("from_display") or (context or {}).get("genre")
        return (
            f"genre '{old}' is corrected to '{action['to']}'",
            f"reviewed items whose genre was '{old}'",
        )
    if rule_type == "metadata_enhancement":
        tag = next((c["has_tag"] for c in clauses if "has_tag" in c), "?")
        return (
            f"an empty genre is set to '{action['to']}' when the item is tagged '{tag}'",
            f"reviewed items without a genre tagged '{tag}'",
        )
    when, where = _context_words(context)
    return f"items{where} are moved to {action['folder']}", f"moved items{where}"


def _context_words(clause: Mapping[str, Any] | None) -> tuple[str, str]:
    """(' when ...' for the action, ' ...' narrowing the items) for one context clause."""
    if clause is None:
        return "", ""
    if "has_tag" in clause:
        return f" when the item is tagged '{clause['has_tag']}'", f" tagged '{clause['has_tag']}'"
    if clause.get("genre") is not None:
        return f" when the genre is '{clause['genre']}'", f" with genre '{clause['genre']}'"
    if "word" in clause:
        word = clause["word"]
        return f" when the text mentions '{word}'", f" whose text mentions '{word}'"
    if "in_folder" in clause:
        return f" in folder {clause['in_folder']}", f" in folder {clause['in_folder']}"
    if "media_type" in clause:
        return f" for {clause['media_type']} items", f" of type {clause['media_type']}"
    return "", ""


def pattern_key(*parts: Any) -> str:
    """A stable fingerprint of what a pattern is about (not of its evidence)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


# --- storage ---------------------------------------------------------------------------


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
) -> tuple[RuleChanges, list[Rule]]:
    """Make the stored rules agree with the qualifying patterns (``candidates``).

    A pattern already stored (same ``pattern_key``) updates its rule; a new one is
    inserted. A rule disabled because the evidence had faded is enabled again when
    the pattern qualifies again; one disabled by the user or for a low success rate
    stays disabled. A learned rule whose pattern no longer qualifies is disabled with
    the reason. ``mined``: key -> (support, confidence) of every pattern mined,
    qualifying or not. Returns the changes and every rule as it stands afterwards
    (new ones have ``id`` ``None`` in a dry run).
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
        if key in mined and support >= min_support and confidence >= min_confidence:
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
