"""The lexical index of a library, kept current without rebuilding it.

Triggers (migration 0015) append the media id of every insert, update and delete
of an item's searchable text (title, genre, description, type, tags, transcript)
to ``search_changes``, whichever process writes. Each process caches one index
per database with the last change id it has read; before a search it asks for
the log's newest id (one primary-key lookup; nothing more when nothing
changed), then for the changes after the id it has read, re-reads only those
items and makes the next index from the cached one
(:meth:`LexicalIndex.replaced`). A deleted item has no row left and leaves the
index. A new index is built from scratch only on first use, or when the change
log no longer reaches back to the cached index's last id (the log was pruned).

On PostgreSQL a transaction may commit a change with a lower id than one
already read (ids are taken at insert, not at commit), so ids skipped below the
last one read are asked for again on later refreshes until they appear or are
older than :data:`GAP_WAIT_S` (a rolled-back insert leaves its id unused).

The log is pruned to its last :data:`KEEP_CHANGES` rows when it has grown past
twice that; an index older than the pruned part is simply rebuilt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.exc import OperationalError

from atlas.caches import CACHES
from atlas.db import database_errors
from atlas.db.tables import media, media_tags, search_changes, transcripts
from atlas.embeddings.lexical import LexicalDocument, LexicalIndex, tokenize
from atlas.media.tags import normalise_tag

__all__ = ["build_lexical_index", "get_lexical_index"]

_TITLE_WEIGHT = 3
_CONFIRMED_TAG_WEIGHT = 3
#: How long an id skipped in the change log is waited for (see the module docstring).
GAP_WAIT_S = 600.0
#: Change-log rows kept when it is pruned.
KEEP_CHANGES = 50_000
_CHUNK = 500


@dataclass
class _Cached:
    index: LexicalIndex
    last_id: int
    #: Skipped change ids still awaited, with when they were first missed.
    gaps: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def get_lexical_index(engine: Engine) -> LexicalIndex:
    """The BM25 index of the library in ``engine``, current as of this call."""
    key = str(engine.url)
    built: list[_Cached] = []

    def build() -> _Cached:
        built.append(_build_cached(engine))
        return built[0]

    cached = CACHES.lexical.get(key, build)
    if built:
        return cached.index  # read just now: nothing to catch up on
    if not cached.gaps and _newest(engine) == cached.last_id:
        # Nothing changed, asked without the lock: concurrent searches (a server's
        # threads) do not queue behind each other's lookup. ``_refresh`` replaces the
        # index before it moves ``last_id``, so the index read here is never older.
        return cached.index
    with cached.lock:
        if not _refresh(engine, cached):
            cached = _build_cached(engine)
            CACHES.lexical.put(key, cached)
        return cached.index


def build_lexical_index(engine: Engine) -> LexicalIndex:
    """Read title, tags, description and transcript of every item and index them."""
    return _build_cached(engine).index


def _build_cached(engine: Engine) -> _Cached:
    with database_errors(engine), engine.connect() as connection:
        # The log's position first: a change after it is read again later (harmless).
        last_id, recent = _log_tail(connection)
        documents = _documents(connection, None)
    cached = _Cached(LexicalIndex.of(list(documents.values())), last_id)
    _note_gaps(cached, recent, max(0, last_id - _GAP_WINDOW), last_id)
    return cached


_GAP_WINDOW = 1000


def _log_tail(connection: Connection) -> tuple[int, list[int]]:
    last_id = connection.execute(select(func.max(search_changes.c.id))).scalar() or 0
    recent = connection.scalars(
        select(search_changes.c.id).where(search_changes.c.id > last_id - _GAP_WINDOW)
    ).all()
    return last_id, list(recent)


def _refresh(engine: Engine, cached: _Cached) -> bool:
    """Bring ``cached`` up to date in place; False when it must be rebuilt instead."""
    now = time.monotonic()
    cached.gaps = {i: t for i, t in cached.gaps.items() if now - t < GAP_WAIT_S}
    with database_errors(engine), engine.connect() as connection:
        newest = _newest_id(connection)
        if newest < cached.last_id:
            return False  # the log restarted: another database at this address
        if newest == cached.last_id and not cached.gaps:
            return True  # nothing changed: one primary-key lookup
        wanted = search_changes.c.id > cached.last_id
        if cached.gaps:
            wanted = wanted | search_changes.c.id.in_(list(cached.gaps))
        rows = connection.execute(
            select(search_changes.c.id, search_changes.c.media_id).where(wanted)
        ).all()
        if not rows:
            return True
        first_id = connection.execute(select(func.min(search_changes.c.id))).scalar() or 0
        if first_id > cached.last_id + 1 and cached.last_id:
            return False  # pruned past what this index has read
        changed = {row.media_id for row in rows}
        documents = _documents(connection, changed)
    new_ids = sorted(row.id for row in rows if row.id > cached.last_id)
    # The index first, then the position: a reader without the lock that sees the new
    # ``last_id`` also sees the index that holds those changes.
    cached.index = cached.index.replaced({m: documents.get(m) for m in changed})
    read = {row.id for row in rows}
    gaps = {i: t for i, t in cached.gaps.items() if i not in read}
    if new_ids:
        _note_gaps_in(gaps, new_ids, cached.last_id, new_ids[-1])
    cached.gaps = gaps
    if new_ids:
        cached.last_id = new_ids[-1]
    if new_ids and cached.last_id - first_id > 2 * KEEP_CHANGES:
        _prune(engine, cached.last_id - KEEP_CHANGES)
    return True


def _note_gaps(cached: _Cached, seen: Iterable[int], after: int, upto: int) -> None:
    _note_gaps_in(cached.gaps, seen, after, upto)


def _note_gaps_in(gaps: dict[int, float], seen: Iterable[int], after: int, upto: int) -> None:
    present = set(seen)
    now = time.monotonic()
    for missing in range(max(after + 1, 1), upto):
        if missing not in present:
            gaps.setdefault(missing, now)


def _newest(engine: Engine) -> int:
    with database_errors(engine), engine.connect() as connection:
        return _newest_id(connection)


def _newest_id(connection: Connection) -> int:
    """The change log's newest id (0 when empty): one primary-key lookup."""
    return int(connection.execute(select(func.max(search_changes.c.id))).scalar() or 0)


def _prune(engine: Engine, below: int) -> None:
    """Housekeeping: drop old change-log rows; a busy database is left for next time."""
    try:
        with engine.begin() as connection:
            connection.execute(delete(search_changes).where(search_changes.c.id < below))
    except OperationalError:
        return


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
