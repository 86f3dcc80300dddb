"""Similar media and text search over the library.

* :func:`similar_media` — "more like this": the stored vector of one item against
  every other (no model call).
* :func:`search_media` — a text query, in one of three modes:

  - ``vector``: the query's embedding against the items' (cosine);
  - ``lexical``: BM25 over title, tags, description and transcript
    (:mod:`atlas.embeddings.lexical`);
  - ``hybrid`` (default): both rankings fused by reciprocal rank fusion,
    ``score = sum(1 / (60 + rank))`` over the two lists, each cut at
    ``max(50, 3 * top)``. RRF needs no score calibration between cosine and
    BM25, and an item both rankings like rises above one only one likes.

``similarity`` in a result is the cosine similarity between the query (item or
text) and the item, except in ``lexical`` mode, where it is the BM25 score
relative to the best match (1.0 for the best). ``threshold`` applies to it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, select

from atlas.config import Settings
from atlas.db import check_id, database_errors
from atlas.db.tables import MEDIA_TYPES, media, media_embeddings, transcripts
from atlas.embeddings.clusters import distinctive_tags, group_labels
from atlas.embeddings.lexical import get_lexical_index, tokenize
from atlas.embeddings.providers import get_provider
from atlas.embeddings.repository import load_tags
from atlas.embeddings.store import Neighbour, VectorCollection, get_store
from atlas.errors import CHECK_VECTOR_STORE, InvalidInput, NotFound
from atlas.media.tags import normalise_tag

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

__all__ = [
    "MODES",
    "HitGroup",
    "SearchHit",
    "SearchResult",
    "embed_texts",
    "media_vectors",
    "nearest_media",
    "search_media",
    "similar_media",
]

MODES = ("vector", "lexical", "hybrid")
RRF_K = 60
MAX_TOP = 1000
_SHOWN_TAGS = 6


@dataclass(frozen=True)
class SearchHit:
    """One result row."""

    media_id: int
    title: str | None
    media_type: str
    year: int | None
    #: See the module docstring: cosine similarity (relative BM25 in lexical mode).
    similarity: float
    #: What the results are ordered by (similarity, BM25 or fused RRF score).
    score: float
    tags: list[str]
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.media_id,
            "title": self.title,
            "media_type": self.media_type,
            "year": self.year,
            "similarity": round(self.similarity, 4),
            "score": round(self.score, 6),
            "tags": self.tags,
            "why": self.why,
        }


@dataclass(frozen=True)
class HitGroup:
    """Results that sit together, named by their most telling tags."""

    name: str
    tags: list[str]
    media_ids: list[int]


@dataclass
class SearchResult:
    mode: str  # similar | vector | lexical | hybrid
    model: str | None
    hits: list[SearchHit]
    query: str | None = None
    media_id: int | None = None
    media_title: str | None = None
    groups: list[HitGroup] | None = None
    filters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mode": self.mode,
            "model": self.model,
            "query": self.query,
            "media_id": self.media_id,
            "media_title": self.media_title,
            "filters": self.filters,
            "results": [hit.to_dict() for hit in self.hits],
        }
        if self.groups is not None:
            data["clusters"] = [
                {"name": g.name, "tags": g.tags, "ids": g.media_ids} for g in self.groups
            ]
        return data


# --- validation --------------------------------------------------------------------


def _check_options(
    top: int, threshold: float | None, media_type: str | None, genre: str | None
) -> tuple[str | None, str | None]:
    if top < 1:
        raise InvalidInput("--top must be at least 1")
    if top > MAX_TOP:
        raise InvalidInput(f"--top must be at most {MAX_TOP}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InvalidInput("--threshold must be between 0 and 1")
    if media_type is not None and media_type not in MEDIA_TYPES:
        raise InvalidInput(f"unknown media type {media_type!r}; use {', '.join(MEDIA_TYPES)}")
    wanted_genre = None
    if genre is not None:
        wanted_genre = normalise_tag(genre)
        if not wanted_genre:
            raise InvalidInput("--genre cannot be empty")
    return media_type, wanted_genre


# --- similar media -----------------------------------------------------------------


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
    """The ``top`` media most similar to ``media_id`` (itself excluded), best first.

    Uses the stored vector: no model is loaded. Raises ``NotFound`` for an unknown
    id or an item not embedded yet, ``InvalidInput`` for bad options.
    """
    media_type, genre_norm = _check_options(top, threshold, media_type, genre)
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

    neighbours = collection.query(vector, top + 3, media_type=media_type, genre=genre_norm)
    neighbours = [n for n in neighbours if n.media_id != media_id]
    if threshold is not None:
        neighbours = [n for n in neighbours if n.similarity >= threshold]
    with database_errors(engine), engine.connect() as connection:
        details = _details(connection, [n.media_id for n in neighbours] + [media_id])
    source = details.pop(media_id, {"tags": [], "genre": None})
    hits = []
    for neighbour in neighbours:
        item = details.get(neighbour.media_id)
        if item is None:
            continue  # a vector of a deleted item; checking the store removes it
        hits.append(
            _hit(
                item,
                neighbour.similarity,
                neighbour.similarity,
                _why_similar(source, item),
            )
        )
        if len(hits) == top:
            break
    result = SearchResult(
        mode="similar",
        model=model_id,
        hits=hits,
        media_id=media_id,
        media_title=row.title,
        filters=_filters(media_type, genre, threshold),
    )
    if cluster:
        result.groups = _group(collection, hits)
    return result


def _why_similar(source: dict[str, Any], other: dict[str, Any]) -> str:
    other_norms = {_norm(tag.tag) for tag in other["tags"]}
    shared = [tag.tag for tag in source["tags"] if _norm(tag.tag) in other_norms]
    reasons = []
    if shared:
        more = f" +{len(shared) - 4}" if len(shared) > 4 else ""
        reasons.append("shares tags: " + ", ".join(shared[:4]) + more)
    genre = source.get("genre")
    if (
        genre
        and other.get("genre")
        and normalise_tag(genre) == normalise_tag(other["genre"])
        and normalise_tag(genre) not in {normalise_tag(tag) for tag in shared}
    ):
        reasons.append(f"same genre: {genre}")
    return "; ".join(reasons) or "close in meaning"


@functools.lru_cache(maxsize=8192)
def _norm(tag: str) -> str:
    return normalise_tag(tag)


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
) -> SearchResult:
    """The ``top`` media best matching a text query (see the module docstring).

    Raises ``InvalidInput`` for an empty query or bad options, ``NotFound`` when
    vector or hybrid search finds nothing embedded yet, ``Unavailable`` when the
    model or the store cannot be reached.
    """
    media_type, genre_norm = _check_options(top, threshold, media_type, genre)
    if mode not in MODES:
        raise InvalidInput(f"unknown mode {mode!r}; use {', '.join(MODES)}")
    text = " ".join((query or "").split())
    if not text:
        raise InvalidInput("the query is empty; give some words to search for")

    provider = get_provider(settings)
    pool = max(50, 3 * top)
    query_vector: Vector | None = None
    collection: VectorCollection | None = None
    vector_hits: list[Neighbour] = []
    lexical_scores: dict[int, float] = {}
    lexical_rank: dict[int, int] = {}

    if mode in ("vector", "hybrid"):
        collection = _model_collection(settings, engine, provider.model_id)
        query_vector = provider.embed([text])[0]
        vector_hits = collection.query(
            query_vector,
            top + 3 if mode == "vector" else pool,
            media_type=media_type,
            genre=genre_norm,
        )
    if mode in ("lexical", "hybrid"):
        lexical = get_lexical_index(engine).search(
            text, top + 3 if mode == "lexical" else pool, media_type=media_type, genre=genre
        )
        lexical_scores = {hit.media_id: hit.score for hit in lexical}
        lexical_rank = {hit.media_id: rank for rank, hit in enumerate(lexical, start=1)}
    vector_sim = {n.media_id: n.similarity for n in vector_hits}
    vector_rank = {n.media_id: rank for rank, n in enumerate(vector_hits, start=1)}

    if mode == "vector":
        ranked = [(n.media_id, n.similarity) for n in vector_hits]
    elif mode == "lexical":
        ranked = sorted(lexical_scores.items(), key=lambda kv: (-kv[1], kv[0]))
    else:
        fused: dict[int, float] = {}
        for ranks in (vector_rank, lexical_rank):
            for media_id, rank in ranks.items():
                fused[media_id] = fused.get(media_id, 0.0) + 1.0 / (RRF_K + rank)
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
        missing = [m for m, _ in ranked if m not in vector_sim]
        if missing and collection is not None and query_vector is not None:
            for media_id, vector in collection.vectors(missing).items():
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
    with database_errors(engine), engine.connect() as connection:
        details = _details(connection, ids, with_text=True)
    terms = set(tokenize(text))
    hits = []
    for media_id, score, similarity in candidates:
        item = details.get(media_id)
        if item is None:
            continue
        why = _why_query(item, terms, vector_rank.get(media_id), lexical_rank.get(media_id))
        hits.append(_hit(item, similarity, score, why))
        if len(hits) == top:
            break
    result = SearchResult(
        mode=mode,
        model=provider.model_id if mode != "lexical" else None,
        hits=hits,
        query=text,
        filters=_filters(media_type, genre, threshold),
    )
    if cluster:
        if collection is None:
            collection = _model_collection(settings, engine, provider.model_id)
        result.groups = _group(collection, hits)
    return result


def _why_query(
    item: dict[str, Any], terms: set[str], vector_rank: int | None, lexical_rank: int | None
) -> str:
    reasons = []
    if lexical_rank is not None and terms:
        fields = {
            "title": set(tokenize(item["title"] or "")),
            "tags": {t for tag in item["tags"] for t in tokenize(tag.tag)},
            "description": set(tokenize(item["description"] or "")),
            "transcript": set(tokenize(item["transcript"] or "")),
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
    return "; ".join(reasons) or "close in meaning"


# --- shared helpers ------------------------------------------------------------------


def _model_collection(settings: Settings, engine: Engine, model_id: str) -> VectorCollection:
    """The collection of ``model_id`` that ``media_embeddings`` says holds its vectors."""
    with database_errors(engine), engine.connect() as connection:
        dimension = connection.scalar(
            select(media_embeddings.c.dimension)
            .where(media_embeddings.c.model == model_id)
            .limit(1)
        )
    collection = (
        get_store(settings).collection(model_id, int(dimension), create=False)
        if dimension is not None
        else None
    )
    if collection is None:
        raise NotFound(f"nothing is embedded with {model_id} yet; run: atlas embed-media --all")
    return collection


def _details(
    connection: Connection, media_ids: Sequence[int], *, with_text: bool = False
) -> dict[int, dict[str, Any]]:
    if not media_ids:
        return {}
    columns = [media.c.id, media.c.title, media.c.media_type, media.c.year, media.c.genre]
    if with_text:
        columns.append(media.c.description)
    rows = connection.execute(select(*columns).where(media.c.id.in_(list(media_ids)))).all()
    tags = load_tags(connection, [row.id for row in rows])
    texts: dict[int, str] = {}
    if with_text:
        texts = dict(
            connection.execute(
                select(transcripts.c.media_id, transcripts.c.text).where(
                    transcripts.c.media_id.in_(list(media_ids))
                )
            )
            .tuples()
            .all()
        )
    return {
        row.id: {
            "id": row.id,
            "title": row.title,
            "media_type": row.media_type,
            "year": row.year,
            "genre": row.genre,
            "description": row.description if with_text else None,
            "transcript": texts.get(row.id),
            "tags": tags.get(row.id, []),
        }
        for row in rows
    }


def _hit(item: dict[str, Any], similarity: float, score: float, why: str) -> SearchHit:
    return SearchHit(
        media_id=item["id"],
        title=item["title"],
        media_type=item["media_type"],
        year=item["year"],
        similarity=float(similarity),
        score=float(score),
        tags=[tag.tag for tag in item["tags"][:_SHOWN_TAGS]],
        why=why,
    )


def _filters(media_type: str | None, genre: str | None, threshold: float | None) -> dict[str, Any]:
    return {
        key: value
        for key, value in (("type", media_type), ("genre", genre), ("threshold", threshold))
        if value is not None
    }


def _group(collection: VectorCollection, hits: list[SearchHit]) -> list[HitGroup]:
    """Group the hits by their vectors; name each group by its most telling tags."""
    import numpy as np

    if not hits:
        return []
    vectors = collection.vectors([hit.media_id for hit in hits])
    present = [hit for hit in hits if hit.media_id in vectors]
    if not present:
        return [HitGroup(name="all results", tags=[], media_ids=[h.media_id for h in hits])]
    matrix = np.stack([vectors[hit.media_id] for hit in present])
    labels = group_labels(matrix)
    members: dict[int, list[SearchHit]] = {}
    for hit, label in zip(present, labels, strict=True):
        members.setdefault(label, []).append(hit)
    order = list(members)  # by the rank of each group's best hit
    names = distinctive_tags([[hit.tags for hit in members[label]] for label in order])
    groups = []
    for label, tags in zip(order, names, strict=True):
        name = ", ".join(tags) if tags else ("all results" if len(order) == 1 else "other")
        groups.append(
            HitGroup(name=name, tags=tags, media_ids=[h.media_id for h in members[label]])
        )
    return groups


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
    collection = _model_collection(settings, engine, get_provider(settings).model_id)
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
    collection = _model_collection(settings, engine, get_provider(settings).model_id)
    return collection.vectors(list(media_ids))
