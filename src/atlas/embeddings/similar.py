"""Similar media ("more like this"): meaning plus what the library knows.

Plain cosine between stored vectors finds items that *read* alike; a library
also knows facts the user confirmed. :func:`similar_media` takes the
``POOL`` nearest items by cosine and ranks them again by

    score = cosine + GENRE_WEIGHT * genre overlap + TAG_WEIGHT * tag overlap

* genre overlap: Jaccard of the two items' *confirmed* genres (the ``genre``
  column and genre tags a user or a rule set; automatic tags never count), 0
  when the other item has none. When the item itself has no confirmed genre,
  its ``VOTERS`` nearest neighbours that have one vote for its likely genres
  (a genre's vote: the share of those neighbours carrying it), and a candidate
  scores ``GUESS_WEIGHT`` times the mean vote of its own confirmed genres;
* tag overlap: the confirmed non-genre tags both carry, as a cosine of the two
  tag sets (``shared / sqrt(n_a * n_b)``), 0 when either has none. On the TMDB
  development items it added nothing beside the genres, so ``TAG_WEIGHT`` is 0:
  shared tags are named in the explanation but do not move the ranking.

An item the library knows nothing about falls back to plain cosine. The weights
were chosen on development items of the TMDB benchmark and scored on separate
test items (``benchmarks/search_quality.py`` says which), then ``POOL`` as the
smallest pool that keeps the development agreement of a pool of 60: every item
of the pool costs a read of its facts. Each hit says why it matched: the genres
and tags it shares and how close it is in meaning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, bindparam, case, func, null, select

from atlas.config import Settings
from atlas.db import check_id, database_errors
from atlas.db.tables import media, media_embeddings, media_tags
from atlas.embeddings.live import VectorTable, live_vectors
from atlas.embeddings.providers import get_provider
from atlas.embeddings.repository import chunks, load_tags
from atlas.embeddings.results import (
    SearchResult,
    check_options,
    describe_filters,
    group_hits,
    make_hit,
    norm,
)
from atlas.embeddings.store import VectorSource, get_store
from atlas.errors import CHECK_VECTOR_STORE, EMBED_MISSING, NotFound
from atlas.media.tags import Tag

__all__ = [
    "GENRE_WEIGHT",
    "GUESS_WEIGHT",
    "POOL",
    "TAG_WEIGHT",
    "VOTERS",
    "Facts",
    "SimilarWeights",
    "facts_of",
    "genre_votes",
    "rank_neighbours",
    "similar_media",
    "similarity",
]

#: Candidates taken by cosine before ranking again (at least; ``3 * top`` if more).
POOL = 40
GENRE_WEIGHT = 0.20
GUESS_WEIGHT = 0.20
VOTERS = 20
TAG_WEIGHT = 0.0
_SHOWN = 4
#: A guessed genre is named in the explanation from this share of the votes.
_LIKELY = 0.2


@dataclass(frozen=True)
class Facts:
    """What the library holds as confirmed about one item (normalised names)."""

    genres: frozenset[str]
    tags: frozenset[str]


def facts_of(genre: str | None, tags: Iterable[Tag]) -> Facts:
    """Confirmed genres and tags from the ``genre`` column and ``Tag`` rows (auto left out)."""
    genres = {norm(genre)} if genre else set()
    others = set()
    for tag in tags:
        if tag.source == "auto":
            continue
        if tag.kind == "genre":
            genres.add(tag.norm)
        else:
            others.add(tag.norm)
    genres.discard("")
    return Facts(frozenset(genres), frozenset(others - genres - {""}))


@dataclass(frozen=True)
class SimilarWeights:
    """The constants of the ranking (see the module doc)."""

    genre: float = GENRE_WEIGHT
    guess: float = GUESS_WEIGHT
    voters: int = VOTERS
    tags: float = TAG_WEIGHT
    pool: int = POOL


SHIPPED = SimilarWeights()


def genre_votes(neighbours: Sequence[Facts], voters: int = VOTERS) -> dict[str, float]:
    """Likely genres of an item: the share of its nearest labelled neighbours carrying each."""
    labelled = [facts for facts in neighbours if facts.genres][:voters]
    votes: dict[str, float] = {}
    for facts in labelled:
        for genre in facts.genres:
            votes[genre] = votes.get(genre, 0.0) + 1.0 / len(labelled)
    return votes


def similarity(
    cosine: float,
    source: Facts,
    other: Facts,
    votes: Mapping[str, float] | None = None,
    weights: SimilarWeights = SHIPPED,
) -> float:
    """The ranking score of ``other`` as a neighbour of ``source`` (see the module doc).

    ``votes``: :func:`genre_votes` of the source's neighbours, used only when
    the source has no confirmed genre.
    """
    score = cosine
    if source.genres and other.genres:
        shared = len(source.genres & other.genres)
        score += weights.genre * shared / len(source.genres | other.genres)
    elif votes and other.genres:
        score += weights.guess * sum(votes.get(g, 0.0) for g in other.genres) / len(other.genres)
    if source.tags and other.tags:
        shared = len(source.tags & other.tags)
        score += weights.tags * shared / math.sqrt(len(source.tags) * len(other.tags))
    return score


def rank_neighbours(
    source: Facts,
    candidates: Sequence[tuple[int, float, Facts]],
    weights: SimilarWeights = SHIPPED,
) -> tuple[list[tuple[float, int]], dict[str, float]]:
    """``(score, media_id)`` of candidates ``(media_id, cosine, facts)`` (by cosine), best
    first, and the genre votes used (empty when the source has confirmed genres)."""
    votes = {} if source.genres else genre_votes([c[2] for c in candidates], weights.voters)
    ranked = [
        (similarity(cosine, source, facts, votes, weights), media_id)
        for media_id, cosine, facts in candidates
    ]
    ranked.sort(key=lambda entry: (-entry[0], entry[1]))
    return ranked, votes


#: Tags of one item joined into one string; a tag never holds a control character
#: (``clean_tag`` refuses them), so this one cannot occur inside a tag.
_SEPARATOR = "\x1f"


def _pool_statement(with_tags: bool) -> Select[Any]:
    """One row per existing item of ``:ids``: title, type, year, ``genre`` column and its
    confirmed genre tags (and, ``with_tags``, its other confirmed tags), each joined."""
    is_genre = media_tags.c.kind == "genre"
    condition = and_(media_tags.c.media_id == media.c.id, media_tags.c.source != "auto")
    if not with_tags:
        condition = and_(condition, is_genre)
    others: Any = (
        func.aggregate_strings(case((~is_genre, media_tags.c.tag_norm)), _SEPARATOR)
        if with_tags
        else null()
    )
    return (
        select(
            media.c.id,
            media.c.title,
            media.c.media_type,
            media.c.year,
            media.c.genre,
            func.aggregate_strings(case((is_genre, media_tags.c.tag_norm)), _SEPARATOR),
            others,
        )
        .select_from(media.outerjoin(media_tags, condition))
        .where(media.c.id.in_(bindparam("ids", expanding=True)))
        .group_by(media.c.id)
    )


# Built once: similar media runs them on every call.
_POOL = {with_tags: _pool_statement(with_tags) for with_tags in (False, True)}
_SOURCE = (
    select(media.c.title, media_embeddings.c.dimension)
    .select_from(
        media.outerjoin(
            media_embeddings,
            and_(
                media_embeddings.c.media_id == media.c.id,
                media_embeddings.c.model == bindparam("model"),
            ),
        )
    )
    .where(media.c.id == bindparam("media_id"))
)


def pool_facts(
    connection: Connection, media_ids: Sequence[int], with_tags: bool
) -> tuple[dict[int, Facts], dict[int, dict[str, Any]]]:
    """Confirmed genres (and, ``with_tags``, other confirmed tags) of existing items,
    and their title, type and year: one lean query, one row per item, for the whole pool."""
    facts: dict[int, Facts] = {}
    rows: dict[int, dict[str, Any]] = {}
    for part in chunks(sorted(set(media_ids))):
        found = connection.execute(_POOL[with_tags], {"ids": list(part)}).all()
        for media_id, title, media_type, year, genre, genre_tags, other_tags in found:
            rows[media_id] = {
                "id": media_id,
                "title": title,
                "media_type": media_type,
                "year": year,
                "genre": genre,
                "description": None,
                "transcript": None,
                "tags": [],
            }
            genres = set(genre_tags.split(_SEPARATOR)) if genre_tags else set()
            if genre:
                genres.add(norm(genre))
            genres.discard("")
            others = set(other_tags.split(_SEPARATOR)) if other_tags else set()
            facts[media_id] = Facts(frozenset(genres), frozenset(others - genres - {""}))
    return facts, rows


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
    weights: SimilarWeights = SHIPPED,
    live: bool = False,
) -> SearchResult:
    """The ``top`` media most like ``media_id`` (itself excluded), best first.

    Uses the stored vector: no model is loaded. ``threshold`` applies to the
    cosine similarity. ``live``: read the vectors from the process's in-memory
    copy (:mod:`atlas.embeddings.live`), not the store. Raises ``NotFound`` for an
    unknown id or an item not embedded yet, ``InvalidInput`` for bad options.
    """
    media_type, genre_norm = check_options(top, threshold, media_type, genre)
    check_id(media_id)
    model_id = get_provider(settings).model_id
    # One read connection for the whole call: the item, its pool and the hits' tags
    # come from one snapshot, and the connection is set up once.
    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(_SOURCE, {"model": model_id, "media_id": media_id}).first()
        if row is None:
            raise NotFound(f"no media with id {media_id}")
        if row.dimension is None:
            raise NotFound(f"media {media_id} is not embedded yet", repair=EMBED_MISSING)
        collection: VectorSource | None = (
            live_vectors(settings, engine, model_id, connection)
            if live
            else get_store(settings).collection(model_id, row.dimension, create=False)
        )
        vector = collection.vectors([media_id]).get(media_id) if collection is not None else None
        if collection is None or vector is None:
            raise NotFound(
                f"media {media_id} is recorded as embedded, but its vector is missing from the "
                "vector store",
                repair=CHECK_VECTOR_STORE,
            )

        pool = max(weights.pool, 3 * top) + 1
        neighbours = collection.query(vector, pool, media_type=media_type, genre=genre_norm)
        neighbours = [n for n in neighbours if n.media_id != media_id]
        if threshold is not None:
            neighbours = [n for n in neighbours if n.similarity >= threshold]
        ids = [n.media_id for n in neighbours] + [media_id]
        details: dict[int, dict[str, Any]] | None = None
        if isinstance(collection, VectorTable) and weights.tags == 0:
            # The copy in memory holds each item's confirmed genres: the pool's facts
            # need no query, and only the chosen items' details are read (below).
            known = {m: Facts(g, frozenset()) for m, g in collection.genres_of(ids).items()}
        else:
            known, details = pool_facts(connection, ids, weights.tags > 0)
        source = known.get(media_id, Facts(frozenset(), frozenset()))
        # A vector of a deleted item has no facts; checking the store removes it.
        candidates = [
            (n.media_id, n.similarity, known[n.media_id]) for n in neighbours if n.media_id in known
        ]
        ranked, votes = rank_neighbours(source, candidates, weights)
        chosen = ranked[:top]
        if details is None:
            _, details = pool_facts(connection, [m for _, m in chosen] + [media_id], False)
            chosen = [entry for entry in chosen if entry[1] in details]  # deleted just now
        tags = load_tags(connection, [m for _, m in chosen] + [media_id])
    source_all = facts_of(details.get(media_id, {}).get("genre"), tags.get(media_id, []))
    cosine_of = {media_id: cosine for media_id, cosine, _ in candidates}
    hits = []
    for score, other_id in chosen:
        item = {**details[other_id], "tags": tags.get(other_id, [])}
        cosine = cosine_of[other_id]
        facts = facts_of(item["genre"], item["tags"])
        hits.append(make_hit(item, cosine, score, explain(source_all, facts, item, cosine, votes)))
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


def explain(
    source: Facts,
    other: Facts,
    item: dict[str, Any],
    cosine: float,
    votes: Mapping[str, float] | None = None,
) -> str:
    """``same genre: Drama, War; shares tags: prison, escape; close in meaning (0.62)``."""
    names = {tag.norm: tag.tag for tag in item["tags"]}
    if item.get("genre"):
        names.setdefault(norm(item["genre"]), item["genre"])
    likely = {g for g in other.genres if votes and votes.get(g, 0.0) >= _LIKELY}
    reasons = []
    for label, shared in (
        ("same genre", source.genres & other.genres),
        ("likely same genre (from its neighbours)", likely),
        ("shares tags", source.tags & other.tags),
    ):
        if shared:
            shown = sorted(names.get(n, n) for n in shared)
            more = f" +{len(shown) - _SHOWN}" if len(shown) > _SHOWN else ""
            reasons.append(f"{label}: " + ", ".join(shown[:_SHOWN]) + more)
    reasons.append(f"close in meaning ({cosine:.2f})")
    return "; ".join(reasons)
