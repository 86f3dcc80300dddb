"""The tagger's sources of evidence. Each scores candidate tags for a batch of items.

A source answers, per item, a :class:`SourceResult`: the tags it found evidence
for (a score in 0..1 and a few words of why), and which tags it *judged* at all,
so that its silence about a tag it could have named counts against that tag (see
:mod:`atlas.tagging.combine`).

* :mod:`~atlas.tagging.sources.zero_shot` — the item's text against the vocabulary;
* :mod:`~atlas.tagging.sources.keyphrases` — phrases of its description and transcript;
* :mod:`~atlas.tagging.sources.neighbours` — tags of the nearest already-tagged items;
* :mod:`~atlas.tagging.sources.profiles` — per-tag models learned from confirmed tags;
* :mod:`~atlas.tagging.sources.tuned` — the text model fine-tuned on them (``media-tags train``);
* :mod:`~atlas.tagging.sources.llm` — an LLM through Ollama, when configured.

Learned rules (:func:`atlas.feedback.apply_rules`) act last, when the tags are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

__all__ = ["SOURCES", "Evidence", "LearnedTag", "SourceResult", "learned_evidence"]

#: Every source, in the order explanations name them.
SOURCES = ("zero_shot", "profiles", "tuned", "neighbours", "keyphrases", "llm")


@dataclass(frozen=True)
class Evidence:
    """One source's evidence for one tag of one item."""

    tag: str
    norm: str
    kind: str
    #: 0..1; what the combination weighs.
    score: float
    #: A few words for the explanation: ``zero-shot 0.41 vs label 'Science Fiction'``.
    detail: str


@dataclass
class SourceResult:
    """What one source says about one item."""

    source: str
    evidence: dict[str, Evidence] = field(default_factory=dict)
    #: Tags (normalised) the source considered, with or without evidence.
    judged: set[str] = field(default_factory=set)

    def add(self, evidence: Evidence) -> None:
        current = self.evidence.get(evidence.norm)
        if current is None or evidence.score > current.score:
            self.evidence[evidence.norm] = evidence
        self.judged.add(evidence.norm)

    def judges(self, norm: str) -> bool:
        return norm in self.judged or norm in self.evidence


class LearnedTag(Protocol):
    """A tag a model learned: a column of its scores."""

    @property
    def tag(self) -> str: ...
    @property
    def norm(self) -> str: ...
    @property
    def kind(self) -> str: ...


_Tag = TypeVar("_Tag", bound=LearnedTag)

#: Below this a learned model's score is no evidence (it still judges the tag).
MIN_LEARNED_SCORE = 0.01


def learned_evidence(
    source: str,
    media_ids: Sequence[int],
    tags: Sequence[_Tag],
    scores: Any,
    detail: Callable[[_Tag, float], str],
) -> dict[int, SourceResult]:
    """Results of a model that scores every one of its ``tags`` for every item.

    ``scores``: one row per item (in ``media_ids`` order), one column per tag.
    The source judges all its tags for every item.
    """
    judged = {tag.norm for tag in tags}
    results = {}
    for row, media_id in enumerate(media_ids):
        result = SourceResult(source, judged=set(judged))
        for column, tag in enumerate(tags):
            score = float(scores[row, column])
            if score >= MIN_LEARNED_SCORE:
                result.add(Evidence(tag.tag, tag.norm, tag.kind, score, detail(tag, score)))
        results[media_id] = result
    return results
