"""How the search constants were chosen: grids on development splits only.

``search_quality.py --tune`` runs these and says whether the shipped constants
are the development choice. Nothing here looks at a test query or test item.

* Hybrid fusion (:class:`atlas.embeddings.fusion.FusionWeights`): the grid
  below, scored by mean P@10 over the *development* keyword queries plus mean
  P@10 over the *development* descriptive queries, through the shipped
  :func:`~atlas.embeddings.fusion.fuse` on the same candidates ``search_media``
  gives it; ties go to the first in grid order.
* Similar media (:class:`atlas.embeddings.similar.SimilarWeights`): genre
  agreement@10 on development items, through the shipped
  :func:`~atlas.embeddings.similar.rank_neighbours`. Rule: the best agreement
  among settings whose top 10 keeps at least ``RETENTION`` of the plain
  cosine top 10's mean similarity (neighbours must stay close in meaning; more
  genre weight always buys agreement by giving meaning up). First the genre
  and tag weights on the library with genres (dev: even media ids), then the
  guessed-genre weight and voters on the library without genres in the text
  (dev: unlabelled items with media id % 4 == 2), both over the widest pool of
  ``POOL_GRID``. Last the pool: the smallest of ``POOL_GRID`` whose agreement
  on both development splits is within ``POOL_TOLERANCE`` of the widest pool's
  (a wider pool buys a little agreement and costs a read per item, every call).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from atlas.app import Atlas
from atlas.db.tables import media
from atlas.embeddings import get_provider, get_store
from atlas.embeddings.fusion import FusionWeights, fuse
from atlas.embeddings.lexical_sync import get_lexical_index
from atlas.embeddings.repository import load_tags
from atlas.embeddings.similar import Facts, SimilarWeights, facts_of, rank_neighbours

FUSION_GRID = [
    FusionWeights(feedback=f, words_short=ws, words_long=wl, tags=t)
    for f in (0.0, 0.5, 1.0)
    for ws in (0.1, 0.2, 0.3, 0.5)
    for wl in (0.03, 0.05, 0.1)
    for t in (0.5, 1.0, 1.5, 2.5)
]
GENRE_GRID = [(g, t) for g in (0.0, 0.05, 0.1, 0.2, 0.3) for t in (0.0, 0.05, 0.1, 0.2)]
GUESS_GRID = [(g, v) for v in (5, 10, 20) for g in (0.05, 0.1, 0.2, 0.3)]
RETENTION = 0.95
POOL_GRID = (20, 30, 40, 50, 60)
POOL_TOLERANCE = 0.005
WIDEST = max(POOL_GRID)


def p_at_10(ranked: list[int], relevant: set[int]) -> float:
    return sum(m in relevant for m in ranked[:10]) / 10


def tune_fusion(atlas: Atlas, sets: dict[str, list[tuple[Any, set[int]]]]) -> FusionWeights:
    """The grid's best on the development queries of every set (see the module doc)."""
    provider = get_provider(atlas.settings)
    collection = get_store(atlas.settings).collection(provider.model_id, provider.dimension)
    index = get_lexical_index(atlas.engine)
    cases: dict[str, list[tuple[Any, ...]]] = {}
    for name, queries in sets.items():
        for query, relevant in queries:
            if query.split != "dev":
                continue
            vector = provider.embed([query.text])[0]
            order = [n.media_id for n in collection.query(vector, 50)]
            lexical = {hit.media_id: hit.score for hit in index.search(query.text, 50)}
            vectors = collection.vectors(list(dict.fromkeys([*order, *lexical])))
            words = len(index.term_idfs(query.text))
            cases.setdefault(name, []).append((vector, order, vectors, lexical, words, relevant))

    def score(weights: FusionWeights) -> float:
        total = 0.0
        for rows in cases.values():
            total += statistics.fmean(
                p_at_10(
                    [m for m, _ in fuse(v, o, vs, lx, index.tags, index.tag_rarity, w, weights)[0]],
                    rel,
                )
                for v, o, vs, lx, w, rel in rows
            )
        return total

    scores = [score(weights) for weights in FUSION_GRID]
    return FUSION_GRID[max(range(len(scores)), key=lambda i: (scores[i], -i))]


def library_facts(atlas: Atlas) -> dict[int, Facts]:
    with atlas.engine.connect() as connection:
        genres = {
            row.id: row.genre for row in connection.execute(select(media.c.id, media.c.genre))
        }
        tags = load_tags(connection, list(genres))
    return {m: facts_of(genres[m], tags.get(m, [])) for m in genres}


def neighbour_pools(
    atlas: Atlas, items: Iterable[int], facts: dict[int, Facts]
) -> dict[int, list[tuple[int, float, Facts]]]:
    """Each item's nearest items by cosine (the widest pool of ``POOL_GRID``), as
    ``similar_media`` takes them."""
    provider = get_provider(atlas.settings)
    collection = get_store(atlas.settings).collection(provider.model_id, provider.dimension)
    items = list(items)
    vectors = collection.vectors(items)
    pools = {}
    for media_id in items:
        found = collection.query(vectors[media_id], max(POOL_GRID) + 1)
        pools[media_id] = [
            (n.media_id, n.similarity, facts[n.media_id])
            for n in found
            if n.media_id != media_id and n.media_id in facts
        ]
    return pools


def agreement(
    pools: dict[int, list[tuple[int, float, Facts]]],
    facts: dict[int, Facts],
    truth: dict[int, set[str]],
    weights: SimilarWeights,
) -> tuple[float, float]:
    """Genre agreement@10 and the share of plain cosine's mean top-10 similarity kept."""
    shares, kept = [], []
    for media_id, pool in pools.items():
        pool = pool[: weights.pool]
        ranked, _ = rank_neighbours(facts[media_id], pool, weights)
        hits = [m for _, m in ranked[:10]]
        cosine = {m: c for m, c, _ in pool}
        shares.append(sum(bool(truth[m] & truth[media_id]) for m in hits) / len(hits))
        plain = statistics.fmean(c for _, c, _ in pool[: len(hits)])
        kept.append(statistics.fmean(cosine[m] for m in hits) / plain)
    return statistics.fmean(shares), statistics.fmean(kept)


def choose(
    grid: list[Any], measure: Callable[[Any], tuple[float, float]]
) -> tuple[Any, float, float]:
    """The grid point with the best agreement among those keeping ``RETENTION``."""
    rows = [(point, *measure(point)) for point in grid]
    allowed = [row for row in rows if row[2] >= RETENTION] or rows[:1]
    return max(allowed, key=lambda row: (round(row[1], 6), round(row[2], 6)))


def tune_similar_genres(
    atlas: Atlas, dev_items: list[int], truth: dict[int, set[str]]
) -> tuple[SimilarWeights, float, float]:
    facts = library_facts(atlas)
    pools = neighbour_pools(atlas, dev_items, facts)
    (genre, tags), share, kept = choose(
        GENRE_GRID,
        lambda p: agreement(
            pools, facts, truth, SimilarWeights(genre=p[0], tags=p[1], pool=WIDEST)
        ),
    )
    return SimilarWeights(genre=genre, tags=tags, pool=WIDEST), share, kept


def tune_similar_guess(
    atlas: Atlas, dev_items: list[int], truth: dict[int, set[str]], base: SimilarWeights
) -> tuple[SimilarWeights, float, float]:
    facts = library_facts(atlas)
    pools = neighbour_pools(atlas, dev_items, facts)
    (guess, voters), share, kept = choose(
        GUESS_GRID,
        lambda p: agreement(
            pools,
            facts,
            truth,
            replace(base, guess=p[0], voters=p[1], pool=WIDEST),
        ),
    )
    return replace(base, guess=guess, voters=voters, pool=WIDEST), share, kept


def pool_agreement(
    atlas: Atlas, dev_items: list[int], truth: dict[int, set[str]], weights: SimilarWeights
) -> dict[int, float]:
    """Genre agreement@10 on the development items with each pool of ``POOL_GRID``."""
    facts = library_facts(atlas)
    pools = neighbour_pools(atlas, dev_items, facts)
    return {
        size: agreement(pools, facts, truth, replace(weights, pool=size))[0] for size in POOL_GRID
    }


def choose_pool(*libraries: dict[int, float]) -> int:
    """The smallest pool within ``POOL_TOLERANCE`` of the widest one's agreement on every
    library (see the module doc)."""
    return min(
        size
        for size in POOL_GRID
        if all(scores[size] >= scores[WIDEST] - POOL_TOLERANCE for scores in libraries)
    )
