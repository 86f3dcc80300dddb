"""The tagger tunes itself on the library: weights, threshold and genre floor from its own items.

The shipped source weights, threshold and genre floor (``tagging.weights``,
``tagging.threshold``, ``tagging.genre_floor``) were chosen on one catalogue;
on another library other values fit better. Once the library holds at least
``MIN_ITEMS`` items with confirmed genres (source ``user`` or ``rule``), Atlas
chooses them on those items, by ``FOLDS``-fold cross-validation:

1. The confirmed items are split into ``FOLDS`` folds (by media id). For each
   fold, the sources that learn from confirmed tags are trained on the other
   folds only — the learned profiles (:func:`~atlas.tagging.sources.profiles.fit_profiles`)
   and the neighbour vote (:func:`~atlas.tagging.sources.neighbours.vote`, over
   the other folds' items) — and score the fold's items; zero-shot needs no
   training. Every item so gets each source's evidence as if it were untagged.
2. The shipped :func:`~atlas.tagging.combine.score_candidates` and
   :func:`~atlas.tagging.combine.choose` combine that evidence for every
   candidate of a small grid of weights (zero-shot, neighbours, profiles),
   thresholds and genre floors; each is scored by the genre micro-F1 of what
   it keeps against the items' confirmed genres.
3. The best candidate is used when it beats the shipped values on the same
   items by ``MIN_GAIN``, or by less but in every fold (each fold's items
   scored apart: a small gain that holds on every fifth of the library is no
   accident of a few items); otherwise the shipped values stay, and the stored
   tuning says so and why, with each fold's scores.

The fine-tuned model (``media-tags train``), keyphrases and an LLM keep their
configured weights: the first is trained on every confirmed item, so it has no
held-out scores; the others give no genres of their own. What was learned, with
the cross-validated score of the shipped values, of the learned ones and of
each source alone, is stored by :mod:`atlas.tagging.selftune_store`.

The constants below were set before any benchmark ran, from the sizes involved
(five folds of at least six items; a gain worth a change of one tag in a hundred,
or one that every fold agrees on).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from atlas.config import Settings, TagSourceWeights
from atlas.db import database_errors
from atlas.db.tables import media_tags
from atlas.embeddings import Neighbour
from atlas.media.tags import Tag, tags_by_media
from atlas.tagging.combine import TagPrediction, choose, score_candidates
from atlas.tagging.inputs import chunked, input_vectors, load_texts
from atlas.tagging.sources import SourceResult, learned_evidence
from atlas.tagging.sources.neighbours import vote
from atlas.tagging.sources.profiles import TagExamples, confirmed_examples, fit_profiles
from atlas.tagging.sources.zero_shot import zero_shot
from atlas.tagging.vocabulary import load_vocabulary

__all__ = [
    "FOLDS",
    "LEARNED_SOURCES",
    "MAX_ITEMS",
    "MIN_GAIN",
    "MIN_ITEMS",
    "Learned",
    "confirmed_genre_items",
    "learn_tuning",
    "worth_using",
]

FOLDS = 5
#: Items with confirmed genres needed before anything is learned.
MIN_ITEMS = 30
#: The newest confirmed items the cross-validation uses, at most.
MAX_ITEMS = 1500
#: Micro-F1 the learned values must gain over the shipped ones to be used.
MIN_GAIN = 0.01
#: The sources whose weights are learned.
LEARNED_SOURCES = ("zero_shot", "neighbours", "profiles")
_GRID = {
    "zero_shot": (0.25, 0.5, 1.0),
    "neighbours": (0.25, 0.5, 1.0, 1.5),
    "profiles": (0.5, 1.0, 1.5, 2.5),
}
_THRESHOLDS = tuple(round(0.10 + 0.02 * step, 2) for step in range(16))
#: Share of items with the same text but other genres that makes the labels contradictory.
_MAX_CONTRADICTED = 0.2


@dataclass
class Learned:
    """The outcome of one tuning: what is used, and the evidence for it."""

    status: str  # learned | prior
    items: int
    genres: int
    weights: dict[str, float]
    threshold: float
    genre_floor: float
    reason: str
    #: Cross-validated genre micro-F1: prior, learned, per source alone; confirmed count.
    scores: dict[str, Any] = field(default_factory=dict)


def confirmed_genre_items(engine: Engine) -> int:
    """How many items carry a confirmed genre (what a refresh is measured against)."""
    with database_errors(engine), engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count(func.distinct(media_tags.c.media_id))).where(
                    media_tags.c.source != "auto", media_tags.c.kind == "genre"
                )
            ).scalar()
            or 0
        )


def _prior(settings: Settings, reason: str, **extra: Any) -> Learned:
    config = settings.tagging
    return Learned(
        status="prior",
        items=int(extra.pop("items", 0)),
        genres=int(extra.pop("genres", 0)),
        weights=config.weights.model_dump(),
        threshold=config.threshold,
        genre_floor=config.genre_floor,
        reason=reason,
        scores=extra,
    )


def learn_tuning(
    settings: Settings, engine: Engine, *, checkpoint: Callable[[], None] | None = None
) -> Learned:
    """Cross-validate the tagger on the library's confirmed genres (see the module docstring).

    Never raises for what the library holds: too little or contradictory
    evidence gives the shipped values with the reason.
    """
    config = settings.tagging
    confirmed = confirmed_genre_items(engine)
    base = {"confirmed_items": confirmed}
    if confirmed == 0:
        return _prior(settings, "no item has a confirmed genre yet", **base)
    plans = [p for p in confirmed_examples(settings, engine, limit=MAX_ITEMS) if _genre(p)]
    if not plans:
        return _prior(settings, _why_no_plans(engine, config.profile_min_examples), **base)
    pool = sorted({m for plan in plans for m in plan.examples}, reverse=True)[:MAX_ITEMS]
    with database_errors(engine), engine.connect() as connection:
        texts = load_texts(connection, pool, keep_sources=False)
        carried: dict[int, list[Tag]] = {}
        for part in chunked(pool):
            carried.update(tags_by_media(connection, list(part)))
    usable = [m for m in pool if m in texts and texts[m].has_words]
    vectors = input_vectors(settings, engine, [texts[m] for m in usable])
    usable = sorted(m for m in usable if m in vectors)
    genres = {
        m: [t for t in carried.get(m, []) if t.source != "auto" and t.kind == "genre"]
        for m in usable
    }
    usable = [m for m in usable if genres[m]]
    truth = {m: {t.norm for t in genres[m]} for m in usable}
    distinct = len({norm for found in truth.values() for norm in found})
    base.update(items=len(usable), genres=distinct)
    if len(usable) < MIN_ITEMS:
        return _prior(
            settings,
            f"only {len(usable)} items with confirmed genres and words to learn from; "
            f"{MIN_ITEMS} are needed",
            **base,
        )
    contradicted = _contradicted(
        {m: texts[m].text.replace(texts[m].title or "", "", 1) for m in usable}, truth
    )
    if contradicted > _MAX_CONTRADICTED * len(usable):
        return _prior(
            settings,
            f"{contradicted} of {len(usable)} items share their text with an item that has "
            "other confirmed genres: your corrections contradict each other",
            **base,
        )

    results = _held_out_evidence(
        settings, plans, usable, {m: texts[m].text for m in usable}, vectors, genres, checkpoint
    )
    return _search(settings, results, truth, base, checkpoint)


def _genre(plan: TagExamples) -> bool:
    return plan.tag.kind == "genre"


def _why_no_plans(engine: Engine, needed: int) -> str:
    with database_errors(engine), engine.connect() as connection:
        names = [
            row[0]
            for row in connection.execute(
                select(media_tags.c.tag_norm)
                .where(media_tags.c.source != "auto", media_tags.c.kind == "genre")
                .distinct()
                .limit(2)
            )
        ]
    if len(names) == 1:
        return f"only one genre ('{names[0]}') is confirmed: nothing tells genres apart"
    return (
        f"no genre is confirmed on {needed} items and missing from as many "
        "(tagging.profile_min_examples)"
    )


def _contradicted(texts: Mapping[int, str], truth: Mapping[int, set[str]]) -> int:
    """Items whose text (title aside) another item has too, with other confirmed genres."""
    by_text: dict[str, list[int]] = {}
    for media_id, text in texts.items():
        by_text.setdefault(" ".join(text.lower().split()), []).append(media_id)
    count = 0
    for same in by_text.values():
        if len(same) > 1 and len({frozenset(truth[m]) for m in same}) > 1:
            count += len(same)
    return count


def _held_out_evidence(
    settings: Settings,
    plans: Sequence[TagExamples],
    usable: list[int],
    texts: dict[int, str],
    vectors: Mapping[int, Any],
    genres: Mapping[int, list[Tag]],
    checkpoint: Callable[[], None] | None,
) -> dict[int, dict[str, SourceResult]]:
    """Per item, each source's evidence from a model that never saw the item's tags."""
    import numpy as np

    config = settings.tagging
    vocabulary = load_vocabulary(config)
    matrix = np.stack([vectors[m] for m in usable]).astype(np.float32)
    results: dict[int, dict[str, SourceResult]] = {m: {} for m in usable}
    learnable = {plan.tag.norm for plan in plans}
    for media_id, evidence in zero_shot(settings, vocabulary, matrix, usable).items():
        results[media_id]["zero_shot"] = evidence
    fold_of = _folds(usable)
    for fold in range(FOLDS):
        if checkpoint is not None:
            checkpoint()
        held = [row for row, m in enumerate(usable) if fold_of[m] == fold]
        rest = [row for row, m in enumerate(usable) if fold_of[m] != fold]
        held_ids = [usable[row] for row in held]
        rest_ids = {usable[row] for row in rest}
        trained = fit_profiles(
            [_restricted(plan, rest_ids) for plan in plans],
            texts,
            {m: vectors[m] for m in rest_ids},
        )
        if trained is not None:
            scored = learned_evidence(
                "profiles",
                held_ids,
                trained.tags,
                trained.predict(matrix[held], [texts[m] for m in held_ids]),
                lambda tag, score: f"learned profile {score:.2f}",
            )
            for media_id, result in scored.items():
                results[media_id]["profiles"] = result
        similarity = matrix[held] @ matrix[rest].T
        top = min(config.neighbours, len(rest))
        nearest = np.argsort(-similarity, axis=1)[:, :top]
        # Only the genres worth learning vote: a library of 100,000 one-off tags
        # would otherwise make every item a candidate for all of them.
        voters = {
            usable[row]: [t for t in genres[usable[row]] if t.norm in learnable] for row in rest
        }
        for index, media_id in enumerate(held_ids):
            near = [
                Neighbour(usable[rest[col]], float(similarity[index, col]))
                for col in nearest[index]
            ]
            results[media_id]["neighbours"] = vote(config.auto_weight, vocabulary, near, voters)
    return results


def _folds(usable: Sequence[int]) -> dict[int, int]:
    """The fold of each item (by position in id order)."""
    return {m: index % FOLDS for index, m in enumerate(usable)}


def worth_using(
    prior: float, learned: float, prior_folds: Sequence[float], learned_folds: Sequence[float]
) -> bool:
    """Whether learned values that score ``learned`` against ``prior`` (and per fold) replace them.

    They do when they gain ``MIN_GAIN`` over every item, or gain at all and do
    better in every fold than the shipped values.
    """
    if learned >= prior + MIN_GAIN:
        return True
    return (
        learned > prior
        and len(prior_folds) == len(learned_folds) > 1
        and all(b > a for a, b in zip(prior_folds, learned_folds, strict=True))
    )


def _restricted(plan: TagExamples, keep: set[int]) -> TagExamples:
    pairs = [(m, y) for m, y in zip(plan.examples, plan.labels, strict=True) if m in keep]
    return TagExamples(plan.tag, [m for m, _ in pairs], [y for _, y in pairs])


def _f1(
    candidates: Mapping[int, list[TagPrediction]],
    truth: Mapping[int, set[str]],
    *,
    threshold: float,
    genre_floor: float,
    max_tags: int,
) -> float:
    """Genre micro-F1 of what :func:`choose` keeps of each item's candidates."""
    hits = made = real = 0
    for media_id, found in candidates.items():
        kept = {
            p.norm
            for p in choose(found, threshold=threshold, max_tags=max_tags, genre_floor=genre_floor)
            if p.kind == "genre"
        }
        expected = truth[media_id]
        hits += len(kept & expected)
        made += len(kept)
        real += len(expected)
    return 2 * hits / (made + real) if made + real else 0.0


def _per_fold(
    candidates: Mapping[int, list[TagPrediction]],
    truth: Mapping[int, set[str]],
    *,
    threshold: float,
    genre_floor: float,
    max_tags: int,
) -> list[float]:
    """Genre micro-F1 of each fold's items apart (folds as in :func:`_held_out_evidence`)."""
    fold_of = _folds(sorted(candidates))
    return [
        _f1(
            {m: found for m, found in candidates.items() if fold_of[m] == fold},
            truth,
            threshold=threshold,
            genre_floor=genre_floor,
            max_tags=max_tags,
        )
        for fold in range(FOLDS)
    ]


def _search(
    settings: Settings,
    results: Mapping[int, dict[str, SourceResult]],
    truth: Mapping[int, set[str]],
    base: dict[str, Any],
    checkpoint: Callable[[], None] | None,
) -> Learned:
    config = settings.tagging
    shipped = config.weights

    def scored(weights: TagSourceWeights) -> dict[int, list[TagPrediction]]:
        return {m: score_candidates(found, weights) for m, found in results.items()}

    def best_threshold(candidates: Mapping[int, list[TagPrediction]], floor: float) -> Any:
        return max(
            (
                _f1(candidates, truth, threshold=t, genre_floor=floor, max_tags=config.max_tags),
                -t,
            )
            for t in _THRESHOLDS
        )

    prior_candidates = scored(shipped)
    prior_f1 = _f1(
        prior_candidates,
        truth,
        threshold=config.threshold,
        genre_floor=config.genre_floor,
        max_tags=config.max_tags,
    )
    prior_folds = _per_fold(
        prior_candidates,
        truth,
        threshold=config.threshold,
        genre_floor=config.genre_floor,
        max_tags=config.max_tags,
    )
    alone = {}
    for name in LEARNED_SOURCES:
        only = shipped.model_copy(update={n: 0.0 for n in LEARNED_SOURCES if n != name})
        alone[name] = round(best_threshold(scored(only), 0.0)[0], 4)

    best: tuple[float, float, dict[str, float]] | None = None
    for values in itertools.product(*(_GRID[name] for name in LEARNED_SOURCES)):
        if checkpoint is not None:
            checkpoint()
        update = dict(zip(LEARNED_SOURCES, values, strict=True))
        candidates = scored(shipped.model_copy(update=update))
        f1, negative = best_threshold(candidates, config.genre_floor)
        if best is None or f1 > best[0]:
            best = (f1, -negative, update)
    assert best is not None
    _, threshold, update = best
    weights = shipped.model_copy(update=update)
    candidates = scored(weights)
    floors = (0.0, *(round(0.02 * step, 2) for step in range(1, 50) if 0.02 * step < threshold))
    floor_f1, floor = max(
        (
            _f1(candidates, truth, threshold=threshold, genre_floor=f, max_tags=config.max_tags),
            -f,
        )
        for f in floors
    )
    floor = -floor
    learned_folds = _per_fold(
        candidates, truth, threshold=threshold, genre_floor=floor, max_tags=config.max_tags
    )
    better = sum(b > a for a, b in zip(prior_folds, learned_folds, strict=True))
    scores = {
        **base,
        "folds": FOLDS,
        "prior": round(prior_f1, 4),
        "learned": round(floor_f1, 4),
        "prior_folds": [round(f, 4) for f in prior_folds],
        "learned_folds": [round(f, 4) for f in learned_folds],
        "sources": alone,
    }
    if not worth_using(prior_f1, floor_f1, prior_folds, learned_folds):
        return Learned(
            status="prior",
            items=int(base["items"]),
            genres=int(base["genres"]),
            weights=shipped.model_dump(),
            threshold=config.threshold,
            genre_floor=config.genre_floor,
            reason=(
                f"the best weights found score genre micro-F1 {floor_f1:.3f} on your items, "
                f"the shipped ones {prior_f1:.3f}: not {MIN_GAIN:g} better, and better in "
                f"{better} of {FOLDS} folds only, so the shipped ones stay"
            ),
            scores=scores,
        )
    trusted = max(LEARNED_SOURCES, key=lambda name: (update[name], alone[name]))
    return Learned(
        status="learned",
        items=int(base["items"]),
        genres=int(base["genres"]),
        weights=weights.model_dump(),
        threshold=threshold,
        genre_floor=floor,
        reason=(
            f"cross-validated on {base['items']} items with confirmed genres: genre "
            f"micro-F1 {floor_f1:.3f} against {prior_f1:.3f} with the shipped values "
            f"(better in {better} of {FOLDS} folds); "
            f"trusts {trusted.replace('_', '-')} most (alone it scores {alone[trusted]:.3f})"
        ),
        scores=scores,
    )
