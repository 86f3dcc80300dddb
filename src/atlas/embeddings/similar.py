"""Similar media ("more like this"): meaning plus what the library knows.

Plain cosine between stored vectors finds items that *read* alike; a library
also knows facts the user confirmed. :func:`similar_media` takes the
``POOL`` nearest items by cosine and ranks them again by

    score = cosine + GENRE_WEIGHT * genre overlap + TAG_WEIGHT * tag overlap

* genre overlap: Jaccard of the two items' *confirmed* genres (the ``genre``
  column and genre tags a user or a rule set; automatic tags never count), 0
  when either item has none;
* tag overlap: the confirmed non-genre tags both carry, as a cosine of the two
  tag sets (``shared / sqrt(n_a * n_b)``), 0 when either has none.

An item the library knows nothing about falls back to plain cosine. The weights
were chosen on the development half of the TMDB benchmark items (even media ids)
and scored on the other half (``benchmarks/search_quality.py``). Each hit says
why it matched: the genres and tags it shares and how close it is in meaning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, select

from atlas.config import Settings
from atlas.db import check_id, database_errors
from atlas.db.tables import media, media_embeddings
from atlas.embeddings.providers import get_provider
from atlas.embeddings.results import (
    SearchResult,
    check_options,
    describe_filters,
    group_hits,
    load_details,
    make_hit,
    norm,
)
from atlas.embeddings.store import get_store
from atlas.errors import CHECK_VECTOR_STORE, NotFound

__all__ = ["GENRE_WEIGHT", "POOL", "TAG_WEIGHT", "Facts", "facts_of", "similar_media", "similarity"]

#: Candidates taken by cosine before ranking again (at least; ``3 * top`` if more).
POOL = 40
GENRE_WEIGHT = 0.15
TAG_WEIGHT = 0.10
_SHOWN = 4


@dataclass(frozen=True)
class Facts:
    """What the library holds as confirmed about one item (normalised names)."""

    genres: frozenset[str]
    tags: frozenset[str]


def facts_of(genre: str | None, tags: Iterable[Any]) -> Facts:
    """Confirmed genres and tags from the ``genre`` column and ``Tag`` rows (auto left out)."""
    genres = {norm(genre)} if genre else set()
    others = set()
    for tag in tags:
        if tag.source == "auto":
            continue
        if tag.kind == "genre":
            genres.add(norm(tag.tag))
        else:
            others.add(norm(tag.tag))
    genres.discard("")
    return Facts(frozenset(genres), frozenset(others - genres - {""}))


def similarity(
    cosine: float,
    source: Facts,
    other: Facts,
    *,
    genre_weight: float = GENRE_WEIGHT,
    tag_weight: float = TAG_WEIGHT,
) -> float:
    """The ranking score of ``other`` as a neighbour of ``source`` (see the module doc)."""
    score = cosine
    if source.genres and other.genres:
        shared = len(source.genres & other.genres)
        score += genre_weight * shared / len(source.genres | other.genres)
    if source.tags and other.tags:
        shared = len(source.tags & other.tags)
        score += tag_weight * shared / math.sqrt(len(source.tags) * len(other.tags))
    return score


def similar_media(
    settings: Settings,
    engine: Engine,
    media_id: int,
    *,
    top: int = 10,
    threshold: float | None = None,
    media_type: str | None = None,
    genre: str | None = None,
    cluster: bool = False,
) -> SearchResult:
    """The ``top`` media most like ``media_id`` (itself excluded), best first.

    Uses the stored vector: no model is loaded. ``threshold`` applies to the
    cosine similarity. Raises ``NotFound`` for an unknown id or an item not
    embedded yet, ``InvalidInput`` for bad options.
    """
    media_type, genre_norm = check_options(top, threshold, media_type, genre)
    check_id(media_id)
    model_id = get_provider(settings).model_id
    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(
            select(media.c.id, media.c.title, media_embeddings.c.dimension)
            .select_from(
                media.outerjoin(
                    media_embeddings,
                    and_(
                        media_embeddings.c.media_id == media.c.id,
                        media_embeddings.c.model == model_id,
                    ),
                )
            )
            .where(media.c.id == media_id)
        ).first()
    if row is None:
        raise NotFound(f"no media with id {media_id}")
    hint = f"media {media_id} is not embedded yet; run: atlas embed-media --media {media_id}"
    if row.dimension is None:
        raise NotFound(hint)
    collection = get_store(settings).collection(model_id, row.dimension, create=False)
    vector = collection.vectors([media_id]).get(media_id) if collection is not None else None
    if collection is None or vector is None:
        raise NotFound(
            f"media {media_id} is recorded as embedded, but its vector is missing from the "
            "vector store",
            repair=CHECK_VECTOR_STORE,
        )

    pool = max(POOL, 3 * top) + 1
    neighbours = collection.query(vector, pool, media_type=media_type, genre=genre_norm)
    neighbours = [n for n in neighbours if n.media_id != media_id]
    if threshold is not None:
        neighbours = [n for n in neighbours if n.similarity >= threshold]
    with database_errors(engine), engine.connect() as connection:
        details = load_details(connection, [n.media_id for n in neighbours] + [media_id])
    source_item = details.pop(media_id, {"tags": [], "genre": None})
    source = facts_of(source_item.get("genre"), source_item["tags"])
    ranked = []
    for neighbour in neighbours:
        item = details.get(neighbour.media_id)
        if item is None:
            continue  # a vector of a deleted item; checking the store removes it
        facts = facts_of(item["genre"], item["tags"])
        ranked.append((similarity(neighbour.similarity, source, facts), neighbour, item, facts))
    ranked.sort(key=lambda entry: (-entry[0], entry[1].media_id))
    hits = [
        make_hit(
            item, neighbour.similarity, score, explain(source, facts, item, neighbour.similarity)
        )
        for score, neighbour, item, facts in ranked[:top]
    ]
    result = SearchResult(
        mode="similar",
        model=model_id,
        hits=hits,
        media_id=media_id,
        media_title=row.title,
        filters=describe_filters(media_type, genre, threshold),
    )
    if cluster:
        result.groups = group_hits(collection, hits)
    return result


def explain(source: Facts, other: Facts, item: dict[str, Any], cosine: float) -> str:
    """``same genre: Drama, War; shares tags: prison, escape; close in meaning (0.62)``."""
    names = {norm(tag.tag): tag.tag for tag in item["tags"]}
    if item.get("genre"):
        names.setdefault(norm(item["genre"]), item["genre"])
    reasons = []
    for label, shared in (
        ("same genre", source.genres & other.genres),
        ("shares tags", source.tags & other.tags),
    ):
        if shared:
            shown = sorted(names.get(n, n) for n in shared)
            more = f" +{len(shown) - _SHOWN}" if len(shown) > _SHOWN else ""
            reasons.append(f"{label}: " + ", ".join(shown[:_SHOWN]) + more)
    reasons.append(f"close in meaning ({cosine:.2f})")
    return "; ".join(reasons)
