"""Hybrid fusion: meaning, words and what the library knows, weighed per query.

Plain reciprocal rank fusion gives the BM25 list the same vote as the vector
list. That suits a short query of rare words ("heist casino") and hurts a long
descriptive one ("a lonely robot searching for a friend"), where BM25 ranks
whatever shares the common words, so hybrid search came out below plain vector
search on such queries. Atlas fuses scores instead, over the union of both
lists (each cut at ``max(50, 3 * top)``):

    score(item) = cos(q', item) + w(q) * bm25(item) / best bm25 + TAGS * tag_match(item)

* ``q'`` — the query vector moved towards the mean of its ``DEPTH`` nearest
  items (pseudo-relevance feedback, ``q' = q + FEEDBACK * mean``, normalised):
  a description names a thing in other words than the items do; the items that
  match best show the library's words for it;
* ``w(q)`` — the words' weight: ``WORDS_SHORT`` for a query of at most
  ``SHORT_QUERY`` words the library knows, where an exact word match is strong
  evidence, ``WORDS_LONG`` for a longer one;
* ``tag_match`` — how much of the confirmed tags and genres of those ``DEPTH``
  nearest items the item carries, each tag weighted by its rarity in this
  library (``log(n_items / n_items_with_tag)``), 0..1. A library's tags are its
  own vocabulary: items a user filed under the same rare tags as the best
  matches rise, whatever words their descriptions use.

The constants were chosen on the development half of both query sets of
``benchmarks/search_quality.py`` (keyword and descriptive queries at even
positions) and are scored on the other half.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

__all__ = ["SHIPPED", "FusionWeights", "fuse", "tag_rarity"]


@dataclass(frozen=True)
class FusionWeights:
    """The constants of hybrid fusion (see the module doc)."""

    feedback: float = 0.5
    depth: int = 5
    words_short: float = 0.2
    words_long: float = 0.1
    short_query: int = 2
    tags: float = 2.5

    def words_weight(self, query_words: int) -> float:
        """How much BM25 counts for a query of ``query_words`` words the library knows."""
        return self.words_short if query_words <= self.short_query else self.words_long


SHIPPED = FusionWeights()


def tag_rarity(tag_counts: Mapping[str, int], items: int) -> dict[str, float]:
    """``log(items / count)`` of every tag: 0 for a tag on every item."""
    return {tag: math.log(items / count) for tag, count in tag_counts.items() if count > 0}


def fuse(
    query_vector: Vector,
    vector_order: Sequence[int],
    vectors: Mapping[int, Vector],
    lexical: Mapping[int, float],
    tags_of: Mapping[int, frozenset[str]],
    rarity: Mapping[str, float],
    query_words: int,
    weights: FusionWeights = SHIPPED,
) -> tuple[list[tuple[int, float]], dict[str, Any]]:
    """Fused ranking of the items in either list, best first, and what it weighed.

    ``vector_order``: media ids by cosine to the query, best first; ``vectors``:
    the stored vector of every candidate; ``lexical``: BM25 score by media id;
    ``tags_of``: each candidate's confirmed tags and genres (normalised);
    ``rarity``: :func:`tag_rarity` of the library. Candidates without a vector
    are left out.
    """
    import numpy as np

    seeds = [m for m in vector_order[: weights.depth] if m in vectors]
    moved = query_vector.astype(np.float32)
    if seeds and weights.feedback:
        centre = np.mean([vectors[m] for m in seeds], axis=0)
        moved = moved + weights.feedback * centre
        moved = moved / max(float(np.linalg.norm(moved)), 1e-12)
    profile: dict[str, float] = {}
    for media_id in seeds:
        for tag in tags_of.get(media_id, ()):
            profile[tag] = profile.get(tag, 0.0) + rarity.get(tag, 0.0)
    profile_total = sum(profile.values())
    best_words = max(lexical.values(), default=0.0)
    words_weight = weights.words_weight(query_words) if best_words > 0 else 0.0

    candidates = [m for m in dict.fromkeys([*vector_order, *lexical]) if m in vectors]
    if not candidates:
        return [], {}
    cosines = np.stack([vectors[m] for m in candidates]) @ moved
    scored = []
    for media_id, cosine in zip(candidates, cosines.tolist(), strict=True):
        score = cosine
        if words_weight:
            score += words_weight * lexical.get(media_id, 0.0) / best_words
        if profile_total > 0:
            match = sum(profile.get(tag, 0.0) for tag in tags_of.get(media_id, ()))
            score += weights.tags * match / profile_total
        scored.append((media_id, score))
    scored.sort(key=lambda kv: (-kv[1], kv[0]))
    report = {
        "words_weight": round(words_weight, 3),
        "query_words": query_words,
        "short_query": query_words <= weights.short_query,
        "feedback_items": len(seeds),
        "library_tags": [tag for tag, _ in sorted(profile.items(), key=lambda kv: -kv[1])[:5]],
    }
    return scored, report
