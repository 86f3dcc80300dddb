"""What mining produces: patterns, the mining result, and how a pattern is measured.

A pattern's confidence is its expected precision over the reviewed items where its
condition held (see :mod:`atlas.feedback.patterns` for the families and the
formulas); :class:`Measure` accumulates one candidate's hits and observations.
Context features are ``kind<SEP>value`` strings (cheap to hash, many of them);
:func:`clause_of` turns one into a rule condition clause.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from atlas.feedback.rules import Rule
from atlas.feedback.wording import pattern_key

__all__ = [
    "ADDITION_PRIOR",
    "ANY",
    "EXAMPLES",
    "MAX_CONTEXTS_PER_TAG",
    "MAX_REPORTED",
    "SEP",
    "Measure",
    "MiningResult",
    "Pattern",
    "clause_of",
    "make_pattern",
]

#: Additions are searched over every context (each word, each tag) and every tag
#: the user adds, so some hold on a few items by chance: their confidence is
#: shrunk towards the tag's base rate as if this many more items had been seen.
ADDITION_PRIOR = 10.0
#: At most this many patterns add the same tag (the most precise ones).
MAX_CONTEXTS_PER_TAG = 5
#: A report lists at most this many patterns (the rules are all stored).
MAX_REPORTED = 1000
EXAMPLES = 5
#: Context features are ``kind<SEP>value`` strings (cheap to hash, many of them).
SEP = "\x1f"
ANY = "any" + SEP


@dataclass
class Pattern:
    rule_type: str
    key: str
    condition: dict[str, Any]
    action: dict[str, Any]
    support: int
    observed: int
    confidence: float
    examples: list[int]
    #: In plain words, with the evidence (filled in for the patterns reported).
    description: str = ""
    #: Over both thresholds: becomes (or keeps) a rule.
    qualifies: bool = False
    #: Tag mappings: items where the user's edit paired exactly these two tags.
    paired: int = 0
    #: The user both added and removed the tag on items of this kind: never a rule.
    contradicted: bool = False
    #: A removal or addition sought everywhere (before it was narrowed to its evidence).
    general: bool = False

    def to_rule(self) -> Rule:
        return Rule(
            id=None,
            rule_type=self.rule_type,
            condition=self.condition,
            action=self.action,
            confidence=self.confidence,
            description=self.description,
            support=self.support,
            observed=self.observed,
            examples=list(self.examples),
            pattern_key=self.key,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_type": self.rule_type,
            "description": self.description,
            "support": self.support,
            "observed": self.observed,
            "confidence": round(self.confidence, 4),
            "examples": self.examples,
            "qualifies": self.qualifies,
            "condition": self.condition,
            "action": self.action,
        }


@dataclass
class MiningResult:
    patterns: list[Pattern] = field(default_factory=list)
    feedback_rows: int = 0
    items: int = 0
    min_frequency: int = 3
    min_confidence: float = 0.6
    seconds: float = 0.0
    #: Every candidate measured, qualifying or not: key -> (support, confidence).
    measured: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: Candidates refused though over both thresholds: key -> why.
    refused: dict[str, str] = field(default_factory=dict)
    #: What could not be learned because the user's corrections contradict each other.
    contradictions: list[str] = field(default_factory=list)

    @property
    def qualifying(self) -> list[Pattern]:
        return [pattern for pattern in self.patterns if pattern.qualifies]

    def to_dict(self) -> dict[str, Any]:
        """The result as data; at most :data:`MAX_REPORTED` patterns (strongest first)."""
        return {
            "feedback_rows": self.feedback_rows,
            "items": self.items,
            "min_frequency": self.min_frequency,
            "min_confidence": self.min_confidence,
            "seconds": round(self.seconds, 3),
            "patterns_found": len(self.patterns),
            "qualifying": len(self.qualifying),
            "contradictions": self.contradictions,
            "patterns": [pattern.to_dict() for pattern in self.patterns[:MAX_REPORTED]],
        }


class Measure:
    """Weighted and counted hits over the items where a candidate's condition held."""

    __slots__ = ("examples", "held_n", "held_w", "hit_n", "hit_w")

    def __init__(self) -> None:
        self.held_w = self.hit_w = 0.0
        self.held_n = self.hit_n = 0
        self.examples: list[int] = []

    def add(self, weight: float, hit: bool, media_id: int) -> None:
        self.held_w += weight
        self.held_n += 1
        if hit:
            self.hit_w += weight
            self.hit_n += 1
            if len(self.examples) < EXAMPLES:
                self.examples.append(media_id)

    @property
    def confidence(self) -> float:
        # Laplace's rule of succession: one imagined hit and one imagined miss, so
        # that 3 of 3 is not taken for certainty (small samples overfit, and each
        # overfitted rule costs the user reversals before it is switched off).
        return (self.hit_w + 1.0) / (self.held_w + 2.0)


def clause_of(feature: str) -> dict[str, Any]:
    """The condition clause of a context feature (``kind<SEP>value``)."""
    kind, _, value = feature.partition(SEP)
    name = {
        "genre": "genre",
        "type": "media_type",
        "folder": "in_folder",
        "tag": "has_tag",
        "word": "word",
    }[kind]
    return {name: value}


def make_pattern(
    rule_type: str,
    parts: Iterable[Any],
    condition: dict[str, Any],
    action: dict[str, Any],
    found: Measure,
    confidence: float | None = None,
) -> Pattern:
    confidence = found.confidence if confidence is None else confidence
    return Pattern(
        rule_type=rule_type,
        key=pattern_key(*parts),
        condition=condition,
        action=action,
        support=found.hit_n,
        observed=found.held_n,
        confidence=confidence,
        examples=sorted(found.examples),
    )
