"""Tag patterns: mappings (A predicted, replaced by B), removals and additions.

Removals are optionally limited to a genre, a media type or a folder; additions
are conditioned on a genre, another tag, a word of the title / description /
transcript, a folder or a media type, or hold always. Two passes keep it fast:
the first counts actual corrections to find candidates (and skips those whose
confidence cannot reach the floor), the second measures only the candidates
against every reviewed item (additions as sparse matrix products, see
:mod:`atlas.feedback.sparse`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import chain
from typing import Any

from atlas.feedback.evidence import Evidence
from atlas.feedback.observations import Observations
from atlas.feedback.pattern_model import (
    ADDITION_PRIOR,
    ANY,
    Measure,
    Pattern,
    clause_of,
    make_pattern,
)
from atlas.feedback.sparse import Additions, Reviewed, ReviewedRows, narrow_features

__all__ = ["base_rate", "tag_patterns"]


def tag_patterns(miner: Observations, min_frequency: int, min_confidence: float) -> list[Pattern]:
    import numpy as np

    observations: list[Reviewed] = []
    # Items of the same type, genre and folder share their list of contexts.
    narrow_of: dict[tuple[str, str | None, str | None], list[str]] = {}
    for media_id, obs in miner.tags.items():
        pre, final = obs.pre, obs.final
        predicted = {norm for norm, source in pre.items() if source == "auto"}
        added = final - pre.keys()
        context = miner.contexts.get(media_id)
        narrow: list[str] = []
        if context is not None:
            path = context.path
            where = (context.media_type, context.genre, os.path.dirname(path) if path else None)
            known = narrow_of.get(where)
            if known is None:
                known = narrow_of[where] = narrow_features(context)
            narrow = known
        observations.append(
            Reviewed(media_id, obs, predicted, predicted - final, added, narrow, context)
        )
    # Every item's tags and contexts at once, as sparse 0/1 matrices (rows in
    # ``observations`` order): column sums count them, weighted sums weigh them,
    # products count pairs.
    rows = ReviewedRows(observations, miner.word_text)
    pre_count = rows.shown.counts()
    added_count = rows.added.counts()
    predicted_count = rows.predicted.counts()
    miner.total_w = float(rows.weights.sum())
    miner.pre_w = rows.shown.weighted(rows.weights)
    miner.added_w = rows.added.weighted(rows.weights)
    # Pairs of a removed tag with a context or an added tag count only for tags
    # removed, and added, on min_frequency items.
    often_removed = rows.removed.frequent(min_frequency)
    rem_ctx = set(often_removed.pairs(rows.narrow, min_frequency))
    map_count = often_removed.pairs(rows.added.frequent(min_frequency), min_frequency)

    # A candidate is measured only if its confidence could reach the floor:
    # its corrections are its only hits, and it held on at least (items with
    # the condition) - (items that already had the tag). Weights are bounded
    # by the lightest and heaviest observation, so the bound is exact.
    weights = rows.weights if len(rows.weights) else np.ones(1)
    light, heavy = max(float(weights.min()), 1e-12), float(weights.max())

    def may_qualify(hits: int, held_at_least: int) -> bool:
        misses = max(0, held_at_least - hits)
        best = heavy * hits + 1.0
        return best >= min_confidence * (best + light * misses + 1.0)

    # An addition's confidence is shrunk towards its tag's base rate, so it needs
    # at least this many hits to reach the floor even if it never missed.
    def fewest_hits(b: str) -> float:
        base = base_rate(miner, b)
        if base >= min_confidence:
            return float(min_frequency)
        if min_confidence >= 1.0:
            return float("inf")
        needed = ADDITION_PRIOR * (min_confidence - base) / (heavy * (1.0 - min_confidence))
        return max(float(min_frequency), needed)

    needed = {b: fewest_hits(b) for b, count in added_count.items() if count >= min_frequency}
    frequent_tags = {b for b, hits in needed.items() if added_count[b] >= hits}
    floor = min((needed[b] for b in frequent_tags), default=float("inf"))

    map_by_a: dict[str, list[str]] = {}
    for (a, b), count in map_count.items():
        if may_qualify(count, predicted_count[a] - pre_count[b]):
            map_by_a.setdefault(a, []).append(b)
    rem_keys = set(often_removed.names)
    del map_count

    measures: dict[tuple[str, str, str], Measure] = {}
    for media_id, obs, predicted, _removed, added, narrow, _context in observations:
        pre, final, w = obs.pre, obs.final, obs.w
        for a in predicted & map_by_a.keys():
            gone = a not in final
            for b in map_by_a[a]:
                if b not in pre:  # else the rule only removes (a removal's case)
                    key = ("map", a, b)
                    found = measures.get(key) or measures.setdefault(key, Measure())
                    found.add(w, gone and b in final, media_id)
        # Where the user added the tag themselves, removing it would have been
        # wrong: a tag the user wants elsewhere is not removed always (the
        # tagger's learned cut-offs raise the bar for it instead).
        for a in chain(predicted & rem_keys, added & rem_keys):
            gone = a not in final
            for feature in (ANY, *narrow):
                if feature is ANY or (a, feature) in rem_ctx:
                    key = ("rem", a, feature)
                    found = measures.get(key) or measures.setdefault(key, Measure())
                    found.add(w, gone, media_id)
    # Only tags added, and contexts seen, on that many items can make an
    # addition pattern: only those take part (the words of the items' texts are
    # by far the most contexts).
    held = rows.features().frequent(floor) if frequent_tags else None
    if held is not None and held.names:
        tags = sorted(frequent_tags)
        needed_of = np.array([needed[b] for b in tags])
        base_of = np.array([base_rate(miner, b) for b in tags])
        shown_of = np.array([pre_count[b] for b in tags], dtype=np.float64)

        def may_qualify_additions(b: Any, feature_items: Any, hits: Any) -> Any:
            """Per pair (tag index, its hits, items of its feature): may it qualify?"""
            misses = np.maximum(0.0, feature_items - shown_of[b] - hits)
            best = heavy * hits + ADDITION_PRIOR * base_of[b]
            return (hits >= needed_of[b]) & (
                best >= min_confidence * (heavy * hits + light * misses + ADDITION_PRIOR)
            )

        miner.additions = Additions(
            rows.media_ids,
            rows.weights,
            rows.added.columns(tags),
            rows.shown.columns(tags),
            held,
        )
        measures.update(miner.additions.measure(may_qualify_additions))

    patterns = []
    miner.evidence = evidence = Evidence(rows)
    for key, found in measures.items():
        pattern = _tag_pattern(miner, key, found)
        if key[0] == "map":
            pattern.paired = miner.paired.get((key[1], key[2]), 0)
        elif key[0] == "add":
            miner.addition_keys[pattern.key] = (key[1], key[2])
        if pattern.support >= min_frequency and pattern.confidence >= min_confidence:
            # A would-be rule: narrowed to where its evidence is, and measured there.
            evidence.check(key, pattern, _confidence_of(miner, key), min_frequency)
        pattern.general = key[0] != "map" and key[2] == ANY
        patterns.append(pattern)
    return patterns


def _confidence_of(
    miner: Observations, key: tuple[str, str, str]
) -> Callable[[float, float], float]:
    """The family's confidence of (hits, observations), weighted."""
    if key[0] != "add":
        return lambda hit_w, held_w: (hit_w + 1.0) / (held_w + 2.0)
    base = base_rate(miner, key[1])
    return lambda hit_w, held_w: (hit_w + ADDITION_PRIOR * base) / (held_w + ADDITION_PRIOR)


def base_rate(miner: Observations, b: str) -> float:
    """How often the user adds ``b`` to a reviewed item Atlas did not show it on."""
    lacking = miner.total_w - miner.pre_w.get(b, 0.0)
    return miner.added_w.get(b, 0.0) / lacking if lacking > 0 else 0.0


def _tag_pattern(miner: Observations, key: tuple[str, str, str], found: Measure) -> Pattern:
    family = key[0]
    if family == "map":
        _, a, b = key
        rule_type = "tag_mapping"
        condition: dict[str, Any] = {"all": [{"has_tag": a, "sources": ["auto"]}]}
        action: dict[str, Any] = {
            "op": "replace_tag",
            "from": a,
            "from_display": miner.atlas_display.get(a, a),
            "to": b,
            "display": miner.display(b),
        }
        parts: tuple[Any, ...] = (rule_type, a, b)
    elif family == "rem":
        _, a, feature = key
        rule_type = "tag_removal"
        clauses: list[dict[str, Any]] = [{"has_tag": a, "sources": ["auto"]}]
        if feature != ANY:
            clauses.append(clause_of(feature))
        condition = {"all": clauses}
        action = {"op": "remove_tag", "tag": a, "display": miner.atlas_display.get(a, a)}
        parts = (rule_type, a, feature)
    else:
        _, b, feature = key
        rule_type = "tag_addition"
        clauses = [] if feature == ANY else [clause_of(feature)]
        clauses.append({"lacks_tag": b})
        condition = {"all": clauses}
        action = {
            "op": "add_tag",
            "tag": b,
            "display": miner.display(b),
            "kind": miner.kinds.get(b, "topic"),
        }
        parts = (rule_type, b, feature)
        # Shrunk towards how often the user adds b anyway (see ADDITION_PRIOR).
        base = base_rate(miner, b)
        confidence = (found.hit_w + ADDITION_PRIOR * base) / (found.held_w + ADDITION_PRIOR)
        return make_pattern(rule_type, parts, condition, action, found, confidence)
    return make_pattern(rule_type, parts, condition, action, found)
