"""Learned rules: the rule model (structured conditions and actions) and its validation.

The engine that evaluates rules is :mod:`atlas.feedback.engine`, their words
:mod:`atlas.feedback.wording`, their storage :mod:`atlas.feedback.rule_store`.

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

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atlas.errors import InvalidInput

__all__ = [
    "GENRE_RULE_TYPES",
    "MOVE_RULE_TYPES",
    "RULE_TYPES",
    "TAG_RULE_TYPES",
    "Rule",
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

        That is a removal or a mapping whose only condition is the tag itself, on
        the kind of items its evidence came from (a media type, a folder).
        """
        if self.rule_type not in ("tag_removal", "tag_mapping"):
            return None
        clauses = self.condition.get("all")
        if not isinstance(clauses, list) or not clauses:
            return None
        tag = clauses[0].get("has_tag")
        if clauses[0] != {"has_tag": tag, "sources": ["auto"]}:
            return None
        if any(set(clause) - {"media_type", "in_folder"} for clause in clauses[1:]):
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
