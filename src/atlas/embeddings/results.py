"""What every search returns, and the pieces text search and similar media share.

:class:`SearchResult` holds :class:`SearchHit` rows (and, with ``cluster``,
:class:`HitGroup` groups); :func:`check_options` validates what both searches
accept; :func:`load_details` reads titles, tags and texts of the hits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select

from atlas.config import Settings
from atlas.db import database_errors
from atlas.db.tables import MEDIA_TYPES, media, media_embeddings, transcripts
from atlas.embeddings.clusters import distinctive_tags, group_labels
from atlas.embeddings.live import live_vectors
from atlas.embeddings.repository import load_tags
from atlas.embeddings.store import VectorCollection, VectorSource, get_store
from atlas.errors import EMBED_MISSING, InvalidInput, NotFound, invalid
from atlas.media.tags import normalise_tag

__all__ = [
    "MAX_TOP",
    "HitGroup",
    "SearchHit",
    "SearchResult",
    "check_options",
    "describe_filters",
    "group_hits",
    "load_details",
    "make_hit",
    "model_collection",
    "norm",
]

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
    #: Hybrid mode: the weight the words got against the meaning, and its signals.
    fusion: dict[str, Any] | None = None

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
        if self.fusion is not None:
            data["fusion"] = self.fusion
        if self.groups is not None:
            data["clusters"] = [
                {"name": g.name, "tags": g.tags, "ids": g.media_ids} for g in self.groups
            ]
        return data


# --- validation --------------------------------------------------------------------


def check_options(
    top: int, threshold: float | None, media_type: str | None, genre: str | None
) -> tuple[str | None, str | None]:
    if top < 1:
        raise invalid("top", "must be at least 1")
    if top > MAX_TOP:
        raise invalid("top", f"must be at most {MAX_TOP}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise invalid("threshold", "must be between 0 and 1")
    if media_type is not None and media_type not in MEDIA_TYPES:
        raise InvalidInput(f"unknown media type {media_type!r}; use {', '.join(MEDIA_TYPES)}")
    wanted_genre = None
    if genre is not None:
        wanted_genre = normalise_tag(genre)
        if not wanted_genre:
            raise invalid("genre", "cannot be empty")
    return media_type, wanted_genre


# --- shared helpers ------------------------------------------------------------------


def vector_source(
    settings: Settings,
    engine: Engine,
    model_id: str,
    *,
    live: bool,
    connection: Connection | None = None,
) -> VectorSource:
    """The vectors a search reads: the in-memory copy kept current from the change log
    (``live``, for a process that keeps running; see :mod:`atlas.embeddings.live`;
    ``connection``: the caller's, to check for changes in), or the store's collection."""
    if not live:
        return model_collection(settings, engine, model_id)
    table = live_vectors(settings, engine, model_id, connection)
    if not len(table):
        raise NotFound(f"nothing is embedded with {model_id} yet", repair=EMBED_MISSING)
    return table


def model_collection(settings: Settings, engine: Engine, model_id: str) -> VectorCollection:
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
        raise NotFound(f"nothing is embedded with {model_id} yet", repair=EMBED_MISSING)
    return collection


def load_details(
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


def make_hit(item: dict[str, Any], similarity: float, score: float, why: str) -> SearchHit:
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


def describe_filters(
    media_type: str | None, genre: str | None, threshold: float | None
) -> dict[str, Any]:
    return {
        key: value
        for key, value in (("type", media_type), ("genre", genre), ("threshold", threshold))
        if value is not None
    }


def group_hits(collection: VectorSource, hits: list[SearchHit]) -> list[HitGroup]:
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


@functools.lru_cache(maxsize=8192)
def norm(tag: str) -> str:
    return normalise_tag(tag)
