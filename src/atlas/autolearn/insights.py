"""Insights: typed, graded statements about the library, each with its evidence.

An insight says one thing in one line, shows the numbers it rests on (the window,
the counts, example media or task ids) and, where Atlas can act on it, the action
it suggests. Detectors (``atlas.autolearn.detect_*``) make them; each detector
states its rule, and makes no insight where the data does not support one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atlas.errors import InvalidInput

__all__ = [
    "INSIGHT_KINDS",
    "SEVERITIES",
    "Insight",
    "Suggestion",
    "check_kind",
]

#: The areas an insight is about.
INSIGHT_KINDS = ("performance", "reliability", "coverage", "learning", "library", "schedule")
#: How much it matters, least first.
SEVERITIES = ("info", "warning", "problem")


@dataclass(frozen=True)
class Suggestion:
    """An action Atlas can take about an insight (see :mod:`atlas.autolearn.actions`).

    ``params`` name exactly what the action will touch; ``metric`` is what it
    promises to lower, with its value now (``baseline``).
    """

    action: str
    params: Mapping[str, Any]
    metric: str
    baseline: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "params": dict(self.params),
            "metric": self.metric,
            "baseline": self.baseline,
        }


@dataclass(frozen=True)
class Insight:
    """One finding: what, how sure, and why."""

    #: Stable across runs while the finding stands (e.g. ``coverage:not-embedded``).
    key: str
    kind: str
    severity: str
    statement: str
    #: The rule the detector applied, in plain words.
    rule: str
    #: The numbers behind it (window, counts, example ids).
    evidence: dict[str, Any] = field(default_factory=dict)
    suggestion: Suggestion | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "severity": self.severity,
            "statement": self.statement,
            "rule": self.rule,
            "evidence": self.evidence,
            "suggestion": self.suggestion.to_dict() if self.suggestion else None,
        }


def check_kind(kind: str | None) -> str | None:
    """``kind`` if it is a known insight kind (or None); else ``InvalidInput``."""
    if kind is not None and kind not in INSIGHT_KINDS:
        raise InvalidInput(f"unknown insight kind {kind!r}; use {', '.join(INSIGHT_KINDS)}")
    return kind
