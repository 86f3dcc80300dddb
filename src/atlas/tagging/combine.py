"""One confidence per tag from the evidence of every source, and its explanation.

    confidence(tag) = sum(w_s * score_s(tag)) / (w_prior + sum(w_s, s judged tag))

with the weights ``tagging.weights.*``. A source that judged a tag and found
no evidence for it (zero-shot on a vocabulary label the text is far from, the
neighbours on a genre none of them carries) pulls its confidence down; a source
that could not have named it (the vocabulary does not hold a keyphrase) does not.
``w_prior`` stands for a source that never finds evidence: a tag that one
source alone speaks for gets less confidence than one that several agree on.
A tag is kept when its confidence reaches ``tagging.threshold`` and the cut-off
learned for its kind or itself from the user's reviews (:mod:`atlas.tagging.cutoffs`);
at most ``tagging.max_tags`` per item, the most confident first. Most items have a
genre: when no genre reaches the threshold, the most confident genre is kept
all the same if its confidence reaches ``tagging.genre_floor`` (0: never) and the
user's reviews raised no cut-off for it, and its explanation says so. The
explanation names each source's evidence, e.g. ``zero-shot 0.41 vs label 'Science
Fiction'; 6 of 10 nearest tagged items carry it (4 confirmed)``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from atlas.config import TagSourceWeights
from atlas.media.tags import Tag
from atlas.tagging.cutoffs import Cutoffs
from atlas.tagging.sources import SOURCES, SourceResult

__all__ = ["TagPrediction", "choose", "combine", "score_candidates"]


@dataclass(frozen=True)
class TagPrediction:
    """One candidate tag of one item, scored."""

    tag: str
    norm: str
    kind: str
    confidence: float
    explanation: str
    #: Each source's score (only sources that judged the tag).
    scores: dict[str, float] = field(default_factory=dict)

    def as_tag(self) -> Tag:
        return Tag(
            tag=self.tag,
            kind=self.kind,
            source="auto",
            confidence=self.confidence,
            explanation=self.explanation,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "kind": self.kind,
            "confidence": self.confidence,
            "explanation": self.explanation,
            "scores": {name: round(score, 4) for name, score in self.scores.items()},
        }


def combine(
    results: Mapping[str, SourceResult],
    weights: TagSourceWeights,
    *,
    threshold: float,
    max_tags: int,
    exclude: Collection[str] = (),
    genre_floor: float = 0.0,
    cutoffs: Cutoffs | None = None,
) -> tuple[list[TagPrediction], list[TagPrediction]]:
    """(kept tags, every candidate), most confident first; ``exclude``: norms never kept.

    ``genre_floor`` > 0: when no genre reaches ``threshold``, the most confident
    genre that is not excluded is kept if its confidence reaches the floor (in
    the place of the least confident tag when ``max_tags`` are kept already).
    ``cutoffs``: learned, per kind and tag, a confidence above ``threshold`` to reach.
    """
    candidates = score_candidates(results, weights)
    kept = choose(
        candidates,
        threshold=threshold,
        max_tags=max_tags,
        exclude=exclude,
        genre_floor=genre_floor,
        cutoffs=cutoffs,
    )
    return kept, candidates


def score_candidates(
    results: Mapping[str, SourceResult], weights: TagSourceWeights
) -> list[TagPrediction]:
    """Every candidate tag with its combined confidence, most confident first."""
    weight = {name: float(getattr(weights, name)) for name in SOURCES}
    ordered = [results[name] for name in SOURCES if name in results and weight[name] > 0]
    norms = dict.fromkeys(norm for result in ordered for norm in result.evidence)
    candidates = []
    for norm in norms:
        numerator, denominator = 0.0, float(weights.prior)
        scores: dict[str, float] = {}
        details = []
        first = None
        for result in ordered:
            if not result.judges(norm):
                continue
            evidence = result.evidence.get(norm)
            score = evidence.score if evidence is not None else 0.0
            scores[result.source] = score
            numerator += weight[result.source] * score
            denominator += weight[result.source]
            if evidence is not None:
                first = first or evidence
                details.append(evidence.detail)
        if first is None or denominator <= 0 or numerator <= 0:
            continue
        candidates.append(
            TagPrediction(
                tag=first.tag,
                norm=norm,
                kind=first.kind,
                confidence=round(min(1.0, numerator / denominator), 4),
                explanation="; ".join(details),
                scores=scores,
            )
        )
    candidates.sort(key=lambda p: (-p.confidence, p.norm))
    return candidates


def choose(
    candidates: Sequence[TagPrediction],
    *,
    threshold: float,
    max_tags: int,
    exclude: Collection[str] = (),
    genre_floor: float = 0.0,
    cutoffs: Cutoffs | None = None,
) -> list[TagPrediction]:
    """The tags kept of ``candidates`` (most confident first), as :func:`combine` keeps them."""
    skip = set(exclude)
    learned = cutoffs or Cutoffs()
    allowed = [p for p in candidates if p.norm not in skip]
    kept = [p for p in allowed if p.confidence >= max(threshold, learned.level(p.norm, p.kind))]
    if genre_floor > 0 and not any(p.kind == "genre" for p in kept):
        genre = next((p for p in allowed if p.kind == "genre"), None)
        if (
            genre is not None
            and genre.confidence >= genre_floor
            and learned.level(genre.norm, genre.kind) <= threshold
        ):
            note = (
                f"below the threshold {threshold:g}, kept as the item's most likely genre "
                f"(genre floor {genre_floor:g})"
            )
            floored = replace(genre, explanation=f"{genre.explanation}; {note}")
            # Every kept tag reached the threshold, so it is more confident.
            return [*kept[: max_tags - 1], floored]
    return kept[:max_tags]
