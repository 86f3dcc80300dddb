"""The lexical index of a library, kept current without rebuilding it.

Each process caches one index per database. Before a search,
:func:`atlas.embeddings.changes.kept_current` reads the change log after the
last id the index holds, re-reads only the items logged there and makes the
next index from the cached one (:meth:`LexicalIndex.replaced`); nothing more
than one primary-key lookup when nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, select

from atlas.caches import CACHES
from atlas.db import database_errors
from atlas.db.tables import media, media_tags, transcripts
from atlas.embeddings.changes import kept_current
from atlas.embeddings.lexical import LexicalDocument, LexicalIndex, tokenize
from atlas.media.tags import normalise_tag

__all__ = ["build_lexical_index", "get_lexical_index"]

_TITLE_WEIGHT = 3
_CONFIRMED_TAG_WEIGHT = 3
_CHUNK = 500


def get_lexical_index(engine: Engine, connection: Connection | None = None) -> LexicalIndex:
    """The BM25 index of the library in ``engine``, current as of this call
    (``connection``: the caller's, to check for changes in)."""
    return kept_current(CACHES.lexical, str(engine.url), engine, _index_of, _updated, connection)


def build_lexical_index(engine: Engine) -> LexicalIndex:
    """Read title, tags, description and transcript of every item and index them."""
    with database_errors(engine), engine.connect() as connection:
        return _index_of(connection)


def _index_of(connection: Connection) -> LexicalIndex:
    return LexicalIndex.of(list(_documents(connection, None).values()))


def _updated(connection: Connection, index: LexicalIndex, changed: frozenset[int]) -> LexicalIndex:
    documents = _documents(connection, set(changed))
    return index.replaced({m: documents.get(m) for m in changed})


def _documents(connection: Connection, ids: set[int] | None) -> dict[int, LexicalDocument]:
    """The index documents of ``ids`` (every item when None); deleted items are absent."""
    if ids is None:
        return _read(connection, None)
    documents: dict[int, LexicalDocument] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        documents.update(_read(connection, ordered[start : start + _CHUNK]))
    return documents


def _read(connection: Connection, ids: list[int] | None) -> dict[int, LexicalDocument]:
    media_query = select(
        media.c.id, media.c.media_type, media.c.title, media.c.genre, media.c.description
    ).order_by(media.c.id)
    tag_query = select(
        media_tags.c.media_id, media_tags.c.tag, media_tags.c.kind, media_tags.c.source
    )
    text_query = select(transcripts.c.media_id, transcripts.c.text)
    if ids is not None:
        media_query = media_query.where(media.c.id.in_(ids))
        tag_query = tag_query.where(media_tags.c.media_id.in_(ids))
        text_query = text_query.where(transcripts.c.media_id.in_(ids))
    rows = connection.execute(media_query).all()
    tags: dict[int, list[Any]] = {}
    for tag_row in connection.execute(tag_query):
        tags.setdefault(tag_row.media_id, []).append(tag_row)
    texts = {row.media_id: row.text for row in connection.execute(text_query)}
    return {row.id: _document(row, tags.get(row.id, ()), texts.get(row.id)) for row in rows}


def _document(row: Any, tags: Iterable[Any], transcript: str | None) -> LexicalDocument:
    """Fields weighted BM25F-style by repeating their terms (see :mod:`.lexical`)."""
    tokens: list[str] = []
    tokens += tokenize(row.title or "") * _TITLE_WEIGHT
    item_genres = {normalise_tag(row.genre)} if row.genre else set()
    item_tags = set(item_genres)
    for tag in tags:
        weight = 1 if tag.source == "auto" else _CONFIRMED_TAG_WEIGHT
        tokens += tokenize(tag.tag) * weight
        if tag.source != "auto":
            item_tags.add(normalise_tag(tag.tag))
        if tag.kind == "genre" and tag.source != "auto":
            item_genres.add(normalise_tag(tag.tag))
    tokens += tokenize(row.description or "")
    tokens += tokenize(transcript or "")
    return LexicalDocument(
        row.id, tokens, row.media_type, frozenset(item_genres), frozenset(item_tags - {""})
    )
