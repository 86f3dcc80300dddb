"""Library insights: exact and near duplicates, and genres their neighbours disagree with.

Exact duplicates share a content fingerprint. Near duplicates are pairs of
distinct items whose vectors' cosine similarity is at least ``NEAR_DUPLICATE``.
(Libraries over a few thousand items are searched with an inverted-file index,
see :mod:`atlas.autolearn.neighbours`.) A genre outlier is an item whose
``NEIGHBOURS`` nearest items (each at least ``MIN_NEIGHBOUR_SIMILARITY`` alike)
almost all (``MIN_AGREEMENT``) share one other genre: the binomial chance of so
many agreeing by luck, at the library's own rate of that genre, is below
``MAX_P_VALUE``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from sqlalchemy import Engine, and_, func, select

from atlas.autolearn.insights import Insight
from atlas.autolearn.neighbours import similarity_blocks
from atlas.config import Settings
from atlas.db import database_errors
from atlas.db.tables import media
from atlas.errors import NotFound

__all__ = ["RULES", "detect_library_insights", "recorded_vectors"]

NEAR_DUPLICATE = 0.97
NEIGHBOURS = 10
MIN_AGREEMENT = 8
MIN_NEIGHBOUR_SIMILARITY = 0.3
MAX_P_VALUE = 0.001
EXAMPLES = 10

RULES = {
    "exact-duplicates": "items with the same content fingerprint (not already marked missing)",
    "near-duplicates": f"pairs of items whose vectors have a cosine similarity of at least "
    f"{NEAR_DUPLICATE}",
    "genre-outlier": (
        f"at least {MIN_AGREEMENT} of an item's {NEIGHBOURS} nearest items (each with cosine "
        f"similarity at least {MIN_NEIGHBOUR_SIMILARITY}) share one genre other than its own, "
        f"and a binomial test at the library's rate of that genre gives p < {MAX_P_VALUE}"
    ),
}


def detect_library_insights(engine: Engine, vectors: dict[int, Any]) -> list[Insight]:
    """Duplicate and genre insights; ``vectors``: the current vectors, by media id."""
    found = _exact_duplicates(engine)
    if len(vectors) >= 2:
        found += _vector_insights(engine, vectors)
    return found


def _exact_duplicates(engine: Engine) -> list[Insight]:
    with database_errors(engine), engine.connect() as connection:
        hashes = (
            select(media.c.content_hash)
            .where(and_(media.c.content_hash.is_not(None), ~media.c.missing))
            .group_by(media.c.content_hash)
            .having(func.count() > 1)
        )
        rows = connection.execute(
            select(media.c.id, media.c.content_hash)
            .where(media.c.content_hash.in_(hashes), ~media.c.missing)
            .order_by(media.c.id)
        ).all()
    groups: dict[str, list[int]] = {}
    for row in rows:
        groups.setdefault(row.content_hash, []).append(row.id)
    if not groups:
        return []
    sets = sorted(groups.values())
    return [
        Insight(
            key="library:exact-duplicates",
            kind="library",
            severity="info",
            statement=f"{len(sets)} sets of media items are the same file at different paths",
            rule=RULES["exact-duplicates"],
            evidence={"sets": len(sets), "groups": sets[:EXAMPLES]},
        )
    ]


def recorded_vectors(settings: Settings, engine: Engine) -> dict[int, Any]:
    """The stored vectors of every item recorded as embedded with the configured model."""
    from atlas.embeddings import get_provider, media_vectors
    from atlas.embeddings.repository import recorded_embeddings

    with database_errors(engine), engine.connect() as connection:
        embedded = sorted(recorded_embeddings(connection, get_provider(settings).model_id))
    if not embedded:
        return {}
    try:
        return media_vectors(settings, engine, embedded)
    except NotFound:
        return {}


def _vector_insights(engine: Engine, vectors: dict[int, Any]) -> list[Insight]:
    import numpy as np

    ids = sorted(vectors)
    matrix = np.stack([vectors[m] for m in ids]).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)
    with database_errors(engine), engine.connect() as connection:
        genre_rows = connection.execute(
            select(media.c.id, media.c.genre, media.c.content_hash).where(media.c.id.in_(ids))
        ).all()
    genre = {row.id: (row.genre or "").strip().casefold() or None for row in genre_rows}
    content = {row.id: row.content_hash for row in genre_rows}
    counts = Counter(g for g in genre.values() if g)
    labelled = sum(counts.values())

    pairs: list[tuple[float, int, int]] = []
    outliers: list[dict[str, Any]] = []
    names = sorted(counts)
    codes = np.array([names.index(genre[m]) if genre.get(m) else -1 for m in ids])
    seen_pairs: set[tuple[int, int]] = set()
    for rows, columns, block in similarity_blocks(matrix):
        for row_index, col in np.argwhere(block >= NEAR_DUPLICATE):
            a, b = ids[int(rows[row_index])], ids[int(columns[col])]
            same_file = content.get(a) is not None and content.get(a) == content.get(b)
            if a < b and not same_file and (a, b) not in seen_pairs:
                seen_pairs.add((a, b))
                pairs.append((float(block[row_index, col]), a, b))
        k = min(NEIGHBOURS, block.shape[1] - 1)
        if k < MIN_AGREEMENT or not names:
            continue
        nearest = np.argpartition(-block, k - 1, axis=1)[:, :k]
        close = np.take_along_axis(block, nearest, axis=1) >= MIN_NEIGHBOUR_SIMILARITY
        neighbour_codes = np.where(close, codes[columns[nearest]], -1)
        votes = np.stack([(neighbour_codes == g).sum(axis=1) for g in range(len(names))], axis=1)
        top, agree = votes.argmax(axis=1), votes.max(axis=1)
        own = codes[rows]
        for row_index in np.nonzero((agree >= MIN_AGREEMENT) & (top != own) & (own >= 0))[0]:
            top_name = names[int(top[row_index])]
            picked = int(close[row_index].sum())
            rate = counts[top_name] / max(labelled - 1, 1)
            p_value = _binomial_tail(picked, int(agree[row_index]), rate)
            if p_value >= MAX_P_VALUE:
                continue
            outliers.append(
                {
                    "media_id": ids[int(rows[row_index])],
                    "genre": names[int(own[row_index])],
                    "neighbours_genre": top_name,
                    "agreeing": int(agree[row_index]),
                    "neighbours": picked,
                    "p_value": p_value,
                }
            )
    found: list[Insight] = []
    if pairs:
        pairs.sort(reverse=True)
        found.append(
            Insight(
                key="library:near-duplicates",
                kind="library",
                severity="info",
                statement=f"{len(pairs)} pairs of media items are near duplicates",
                rule=RULES["near-duplicates"],
                evidence={
                    "pairs": [
                        {"a": a, "b": b, "similarity": round(score, 4)}
                        for score, a, b in pairs[:EXAMPLES]
                    ],
                    "count": len(pairs),
                },
            )
        )
    if outliers:
        found.append(
            Insight(
                key="library:genre-outlier",
                kind="library",
                severity="info",
                statement=(
                    f"{len(outliers)} media items have a genre most of their nearest "
                    "neighbours disagree with"
                ),
                rule=RULES["genre-outlier"],
                evidence={"count": len(outliers), "items": outliers[:EXAMPLES]},
            )
        )
    return found


def _binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
