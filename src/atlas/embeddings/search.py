"""Text search over the library, and vector building blocks for other services.

:func:`search_media` answers a text query in one of three modes:

* ``vector``: the query's embedding against the items' (cosine);
* ``lexical``: BM25 over title, tags, description and transcript
  (:mod:`atlas.embeddings.lexical`);
* ``hybrid`` (default): both rankings, each cut at ``max(50, 3 * top)``, fused
  by reciprocal rank fusion in which the lexical list's vote is weighted per
  query by its length, the rarity of its words and how far the two lists agree
  (:mod:`atlas.embeddings.fusion`). The result's ``fusion`` says what weight
  the words got and why.

``similarity`` in a result is the cosine similarity between the query and the
item, except in ``lexical`` mode, where it is the BM25 score relative to the
best match (1.0 for the best). ``threshold`` applies to it. Similar media
("more like this") lives in :mod:`atlas.embeddings.similar`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from atlas.config import Settings
from atlas.db import database_errors
from atlas.embeddings.fusion import SHIPPED, FusionWeights, fuse
from atlas.embeddings.lexical import LexicalIndex, tokenize
from atlas.embeddings.lexical_sync import get_lexical_index
from atlas.embeddings.providers import EmbeddingProvider, get_provider
from atlas.embeddings.results import (
    SearchResult,
    check_options,
    describe_filters,
    group_hits,
    load_details,
    make_hit,
    model_collection,
    vector_source,
)
from atlas.embeddings.store import Neighbour, VectorSource
from atlas.errors import InvalidInput
from atlas.media.tags import normalise_tag

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

__all__ = [
    "MODES",
    "embed_texts",
    "media_vectors",
    "nearest_media",
    "search_media",
]

MODES = ("vector", "lexical", "hybrid")


# --- text search -------------------------------------------------------------------


def search_media(
    settings: Settings,
    engine: Engine,
    query: str,
    *,
    top: int = 10,
    mode: str = "hybrid",
    threshold: float | None = None,
    media_type: str | None = None,
    genre: str | None = None,
    cluster: bool = False,
    weights: FusionWeights = SHIPPED,
    embed_query: Callable[[EmbeddingProvider, str], Vector] | None = None,
    live: bool = False,
) -> SearchResult:
    """The ``top`` media best matching a text query (see the module docstring).

    ``weights`` sets how hybrid mode weighs words against meaning
    (:mod:`atlas.embeddings.fusion`; the shipped constants by default).
    ``embed_query(provider, text)`` gives the query's unit vector (a long-lived
    process passes :meth:`QueryVectors.embed` to reuse the vectors of repeated
    queries); by default the provider embeds it. ``live``: read the vectors from
    the process's in-memory copy (:mod:`atlas.embeddings.live`), not the store.

    Raises ``InvalidInput`` for an empty query or bad options, ``NotFound`` when
    vector or hybrid search finds nothing embedded yet, ``Unavailable`` when the
    model or the store cannot be reached.
    """
    media_type, genre_norm = check_options(top, threshold, media_type, genre)
    if mode not in MODES:
        raise InvalidInput(f"unknown mode {mode!r}; use {', '.join(MODES)}")
    text = " ".join((query or "").split())
    if not text:
        raise InvalidInput("the query is empty; give some words to search for")

    provider = get_provider(settings)
    pool = max(50, 3 * top)
    query_vector: Vector | None = None
    collection: VectorSource | None = None
    vector_hits: list[Neighbour] = []
    lexical_scores: dict[int, float] = {}
    index: LexicalIndex | None = None

    # One read connection for the call: the checks that the indexes are current and
    # the hits' details (a refresh, when one is due, reads in a connection of its own).
    with database_errors(engine), engine.connect() as connection:
        if mode in ("vector", "hybrid"):
            collection = vector_source(
                settings, engine, provider.model_id, live=live, connection=connection
            )
            query_vector = embed_query(provider, text) if embed_query else provider.embed([text])[0]
            vector_hits = collection.query(
                query_vector,
                top + 3 if mode == "vector" else pool,
                media_type=media_type,
                genre=genre_norm,
            )
        if mode in ("lexical", "hybrid"):
            index = get_lexical_index(engine, connection)
            lexical = index.search(
                text, top + 3 if mode == "lexical" else pool, media_type=media_type, genre=genre
            )
            lexical_scores = {hit.media_id: hit.score for hit in lexical}
        lexical_rank = {hit: rank for rank, hit in enumerate(lexical_scores, start=1)}
        vector_sim = {n.media_id: n.similarity for n in vector_hits}
        vector_ids = [n.media_id for n in vector_hits]
        vector_rank = {media_id: rank for rank, media_id in enumerate(vector_ids, start=1)}
        fusion_report: dict[str, Any] | None = None

        if mode == "vector":
            ranked = [(n.media_id, n.similarity) for n in vector_hits]
        elif mode == "lexical":
            ranked = sorted(lexical_scores.items(), key=lambda kv: (-kv[1], kv[0]))
        else:
            assert collection is not None and query_vector is not None and index is not None
            vectors = collection.vectors(list(dict.fromkeys([*vector_ids, *lexical_scores])))
            ranked, fusion_report = fuse(
                query_vector,
                vector_ids,
                vectors,
                lexical_scores,
                index.tags,
                index.tag_rarity,
                len(index.term_idfs(text)),
                weights,
            )
            for media_id, vector in vectors.items():
                if media_id not in vector_sim:
                    vector_sim[media_id] = float(vector @ query_vector)

        best_lexical = max(lexical_scores.values(), default=1.0) or 1.0
        candidates = []
        for media_id, score in ranked:
            if mode == "lexical":
                similarity = lexical_scores[media_id] / best_lexical
            else:
                similarity = vector_sim.get(media_id, 0.0)
            if threshold is not None and similarity < threshold:
                continue
            candidates.append((media_id, score, similarity))
        candidates = candidates[: top + 3]

        ids = [media_id for media_id, _, _ in candidates]
        details = load_details(connection, ids, with_text=True)
    terms = set(tokenize(text))
    telling = set(fusion_report["library_tags"]) if fusion_report else set()
    hits = []
    for media_id, score, similarity in candidates:
        item = details.get(media_id)
        if item is None:
            continue
        why = _why_query(
            item, terms, vector_rank.get(media_id), lexical_rank.get(media_id), telling
        )
        hits.append(make_hit(item, similarity, score, why))
        if len(hits) == top:
            break
    result = SearchResult(
        mode=mode,
        model=provider.model_id if mode != "lexical" else None,
        hits=hits,
        query=text,
        filters=describe_filters(media_type, genre, threshold),
        fusion=fusion_report,
    )
    if cluster:
        if collection is None:
            collection = model_collection(settings, engine, provider.model_id)
        result.groups = group_hits(collection, hits)
    return result


#: Texts up to this long have their words kept (see ``_words``).
_KEPT_TEXT = 2000


def _words(text: str) -> frozenset[str]:
    """The distinct words of ``text``; those of short texts (titles, tag lists,
    descriptions) are kept, since the same items come back search after search."""
    if len(text) > _KEPT_TEXT:
        return frozenset(tokenize(text))
    return _kept_words(text)


@functools.lru_cache(maxsize=8192)
def _kept_words(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def _why_query(
    item: dict[str, Any],
    terms: set[str],
    vector_rank: int | None,
    lexical_rank: int | None,
    telling: set[str],
) -> str:
    reasons = []
    if lexical_rank is not None and terms:
        fields = {
            "title": _words(item["title"] or ""),
            # One pass over all tags (a separator no word crosses): the same tokens.
            "tags": _words("\n".join(tag.tag for tag in item["tags"])),
            "description": _words(item["description"] or ""),
            "transcript": _words(item["transcript"] or ""),
        }
        found = []
        for term in sorted(terms):
            where = [name for name, tokens in fields.items() if term in tokens]
            if where:
                found.append(f"{term} ({', '.join(where)})")
        if found:
            reasons.append("words: " + "; ".join(found))
    if vector_rank is not None:
        reasons.append(f"close in meaning (#{vector_rank})")
    shared = [
        tag.tag
        for tag in item["tags"]
        if tag.source != "auto" and normalise_tag(tag.tag) in telling
    ]
    if shared:
        reasons.append("tagged like the best matches: " + ", ".join(shared[:4]))
    return "; ".join(reasons) or "close in meaning"


# --- building blocks for other services (tagging, ...) ------------------------------


def embed_texts(settings: Settings, texts: Sequence[str]) -> Vector:
    """Unit vectors of arbitrary texts with the configured (cached) model."""
    return get_provider(settings).embed(list(texts))


def nearest_media(
    settings: Settings,
    engine: Engine,
    vector: Vector,
    *,
    top: int = 10,
    media_type: str | None = None,
    genre: str | None = None,
    exclude: Sequence[int] = (),
) -> list[Neighbour]:
    """The embedded media nearest to ``vector`` (cosine), best first, minus ``exclude``.

    Raises ``NotFound`` when nothing is embedded with the configured model.
    """
    if top < 1:
        raise InvalidInput("top must be at least 1")
    collection = model_collection(settings, engine, get_provider(settings).model_id)
    skip = set(exclude)
    found = collection.query(
        vector,
        top + len(skip),
        media_type=media_type,
        genre=normalise_tag(genre) if genre else None,
    )
    return [n for n in found if n.media_id not in skip][:top]


def media_vectors(
    settings: Settings, engine: Engine, media_ids: Sequence[int]
) -> dict[int, Vector]:
    """The stored vectors of these media items (those not embedded are left out)."""
    collection = model_collection(settings, engine, get_provider(settings).model_id)
    return collection.vectors(list(media_ids))
