"""The stored vectors of a model in memory, for a process that keeps running.

``atlas serve`` answers "more like this" and text searches from a copy of the
library's vectors held in memory, kept current from the change log
(:mod:`atlas.embeddings.changes`), instead of asking the vector store. Two
reasons:

* the embedded Chroma store reads its index once, when a process opens it: the
  vectors a worker writes later are invisible to a server started before (its
  queries never return them, and asking for such a vector by id fails). The
  copy reads each changed item's vector from ``media_embeddings.vector``, which
  every process sees as soon as it is committed;
* a query over a few thousand vectors in memory is one matrix product (about
  0.2 ms for 3,000), ten times less than a query through the store.

Vectors recorded before migration 0016 have no copy in the database; those are
read from the vector store when the copy is built. Media type and confirmed
genres (the filters of a search) come from the library as they are now, the
same fields the store holds as metadata from the item's last embedding.

The search is exact: every vector is scored. The copy is a *base* (a matrix of
every vector when it was last compacted) and a small *delta* of the items
changed since, whose base rows are hidden; a refresh copies only the delta and
the hidden mask, and merges both into a new base when the delta outgrows
1/16 of the base. A one-shot command asks the vector store instead (its index
is current when the command starts, and loading every vector for one query
would cost more than it saves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, select

from atlas.caches import CACHES
from atlas.config import Settings
from atlas.db.tables import media, media_embeddings, media_tags
from atlas.embeddings.changes import kept_current
from atlas.embeddings.store import Neighbour, get_store
from atlas.media.tags import normalise_tag

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = ["Entry", "VectorTable", "live_vectors"]

#: The delta is merged into the base when it holds more than this many items, or
#: more than 1/16 of the base.
_MIN_DELTA = 256
_CHUNK = 500


@dataclass(frozen=True)
class Entry:
    """One item's vector (unit length) and the fields searches filter on."""

    vector: Vectors
    media_type: str
    genres: frozenset[str]


class _Rows:
    """Vectors with their media ids, types and genres, as arrays (a base or a delta)."""

    def __init__(self, dimension: int, entries: Mapping[int, Entry]) -> None:
        import numpy as np

        ids = sorted(entries)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.matrix = (
            np.stack([entries[m].vector for m in ids])
            if ids
            else np.zeros((0, dimension), dtype=np.float32)
        )
        self.types = np.asarray([entries[m].media_type for m in ids], dtype=object)
        self.genres = [entries[m].genres for m in ids]
        by_genre: dict[str, list[int]] = {}
        for row, genres in enumerate(self.genres):
            for genre in genres:
                by_genre.setdefault(genre, []).append(row)
        self.genre_rows = {g: np.asarray(rows, dtype=np.int64) for g, rows in by_genre.items()}
        self.row = {media_id: row for row, media_id in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def entry(self, row: int) -> Entry:
        return Entry(self.matrix[row], str(self.types[row]), self.genres[row])

    def best(
        self,
        query: Vectors,
        n: int,
        media_type: str | None,
        genre: str | None,
        hidden: Any = None,
    ) -> list[tuple[float, int]]:
        """``(score, media id)`` of the ``n`` best rows of ``media_type`` and ``genre``
        that are not ``hidden`` (unordered). One product over every row: scoring all
        costs less than copying the rows a filter keeps."""
        import numpy as np

        if not len(self.ids):
            return []
        allowed = ~hidden if hidden is not None else np.ones(len(self.ids), dtype=bool)
        if media_type is not None:
            allowed &= self.types == media_type
        if genre is not None:
            in_genre = np.zeros(len(self.ids), dtype=bool)
            in_genre[self.genre_rows.get(genre, np.zeros(0, dtype=np.int64))] = True
            allowed &= in_genre
        rows = np.flatnonzero(allowed)
        scores = self.matrix @ query
        if len(rows) > n:
            rows = rows[np.argpartition(-scores[rows], n - 1)[:n]]
        return [(float(scores[row]), int(self.ids[row])) for row in rows]


class VectorTable:
    """An immutable snapshot of a model's vectors, queried without the vector store.

    A base (every vector when it was last compacted), the base rows hidden since,
    and a delta of the items changed since (see the module docstring).
    """

    def __init__(
        self,
        dimension: int,
        entries: Mapping[int, Entry],
        *,
        base: tuple[_Rows, Any] | None = None,
    ) -> None:
        """A table of ``entries``; with ``base`` (rows and their hidden mask), a table
        of that base and the delta ``entries``."""
        import numpy as np

        self.dimension = dimension
        if base is None:
            self._base = _Rows(dimension, entries)
            self._hidden = np.zeros(len(self._base), dtype=bool)
            self._changed: dict[int, Entry] = {}
        else:
            self._base, self._hidden = base
            self._changed = dict(entries)
        self._delta = _Rows(dimension, self._changed)

    def __len__(self) -> int:
        return int((~self._hidden).sum()) + len(self._delta)

    def __contains__(self, media_id: object) -> bool:
        if media_id in self._changed:
            return True
        row = self._base.row.get(media_id)  # type: ignore[call-overload]
        return row is not None and not self._hidden[row]

    def entries(self, media_ids: Sequence[int]) -> dict[int, Entry]:
        """The entries of these media ids (missing ones are left out)."""
        found: dict[int, Entry] = {}
        for media_id in media_ids:
            entry = self._changed.get(media_id)
            if entry is not None:
                found[media_id] = entry
                continue
            row = self._base.row.get(media_id)
            if row is not None and not self._hidden[row]:
                found[media_id] = self._base.entry(row)
        return found

    def vectors(self, media_ids: Sequence[int]) -> dict[int, Vectors]:
        """The vectors of these media ids (missing ones are left out)."""
        return {media_id: entry.vector for media_id, entry in self.entries(media_ids).items()}

    def genres_of(self, media_ids: Sequence[int]) -> dict[int, frozenset[str]]:
        """The confirmed genres (normalised) of these media ids (missing ones left out)."""
        return {media_id: entry.genres for media_id, entry in self.entries(media_ids).items()}

    def query(
        self,
        vector: Vectors,
        n: int,
        *,
        media_type: str | None = None,
        genre: str | None = None,
    ) -> list[Neighbour]:
        """The ``n`` nearest media to ``vector`` (cosine), most similar first, filtered
        by media type and confirmed genre (a normalised name)."""
        import numpy as np

        if n < 1:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        length = float(np.linalg.norm(query))
        if length > 0:
            query = query / length
        hits = self._base.best(query, n, media_type, genre, self._hidden)
        hits += self._delta.best(query, n, media_type, genre)
        hits.sort(key=lambda hit: (-hit[0], hit[1]))
        return [Neighbour(media_id=media_id, similarity=score) for score, media_id in hits[:n]]

    def replaced(self, changes: Mapping[int, Entry | None]) -> VectorTable:
        """A new table with these items replaced (``None``: removed)."""
        hidden = self._hidden
        changed = dict(self._changed)
        for media_id, entry in changes.items():
            row = self._base.row.get(media_id)
            if row is not None and not hidden[row]:
                if hidden is self._hidden:
                    hidden = hidden.copy()
                hidden[row] = True
            if entry is None:
                changed.pop(media_id, None)
            else:
                changed[media_id] = entry
        if len(changed) <= max(_MIN_DELTA, len(self._base) // 16):
            return VectorTable(self.dimension, changed, base=(self._base, hidden))
        merged = {
            int(media_id): self._base.entry(row)
            for row, media_id in enumerate(self._base.ids)
            if not hidden[row]
        }
        return VectorTable(self.dimension, merged | changed)


def live_vectors(
    settings: Settings, engine: Engine, model_id: str, connection: Connection | None = None
) -> VectorTable:
    """The vectors of ``model_id`` in ``engine``'s library, current as of this call
    (``connection``: the caller's, to check for changes in)."""
    store = _StoredVectors(settings, model_id)

    def updated(connection: Connection, table: VectorTable, changed: frozenset[int]) -> VectorTable:
        if not len(table):  # nothing was embedded: the first vectors bring the dimension
            return _table_of(connection, store)
        return table.replaced(_changed_entries(connection, store, table, changed))

    return kept_current(
        CACHES.live_vectors,
        f"{engine.url}|{model_id}",
        engine,
        lambda connection: _table_of(connection, store),
        updated,
        connection,
    )


class _StoredVectors:
    """Where vectors recorded before the database kept them are read: the vector store."""

    def __init__(self, settings: Settings, model_id: str) -> None:
        self.settings = settings
        self.model_id = model_id

    def vectors(self, dimension: int, ids: Sequence[int]) -> dict[int, Vectors]:
        if not ids:
            return {}
        collection = get_store(self.settings).collection(self.model_id, dimension, create=False)
        return collection.vectors(ids) if collection is not None else {}


def _table_of(connection: Connection, store: _StoredVectors) -> VectorTable:
    rows = _rows(connection, store.model_id, None)
    dimensions = [row.dimension for row in rows]
    dimension = max(set(dimensions), key=dimensions.count) if dimensions else 1
    rows = [row for row in rows if row.dimension == dimension]
    return VectorTable(
        dimension, _entries(connection, rows, lambda ids: store.vectors(dimension, ids))
    )


def _changed_entries(
    connection: Connection, store: _StoredVectors, table: VectorTable, changed: Iterable[int]
) -> dict[int, Entry | None]:
    """The entries of changed items; ``None`` for items no longer embedded with the model."""

    def known(ids: Sequence[int]) -> dict[int, Vectors]:
        # A vector with no copy in the database has not changed since the table read it.
        found = table.vectors(ids)
        return found | store.vectors(table.dimension, [m for m in ids if m not in found])

    ids = sorted(changed)
    entries: dict[int, Entry | None] = dict.fromkeys(ids)
    for start in range(0, len(ids), _CHUNK):
        rows = _rows(connection, store.model_id, ids[start : start + _CHUNK])
        usable = [row for row in rows if row.dimension == table.dimension]
        entries.update(_entries(connection, usable, known))
    return entries


def _rows(connection: Connection, model_id: str, ids: Sequence[int] | None) -> list[Any]:
    query = (
        select(
            media_embeddings.c.media_id,
            media_embeddings.c.dimension,
            media_embeddings.c.vector,
            media.c.media_type,
            media.c.genre,
        )
        .select_from(media_embeddings.join(media, media.c.id == media_embeddings.c.media_id))
        .where(media_embeddings.c.model == model_id)
    )
    if ids is not None:
        query = query.where(media_embeddings.c.media_id.in_(list(ids)))
    return list(connection.execute(query).all())


def _entries(
    connection: Connection,
    rows: Sequence[Any],
    known: Callable[[Sequence[int]], Mapping[int, Vectors]],
) -> dict[int, Entry]:
    """Entries of rows from :func:`_rows`; a row without a vector takes it from ``known``
    (left out when that has none)."""
    import numpy as np

    genres = _confirmed_genres(connection, [row.media_id for row in rows])
    earlier: Mapping[int, Vectors] = {}
    without = [row.media_id for row in rows if row.vector is None]
    for start in range(0, len(without), _CHUNK):
        earlier = {**earlier, **known(without[start : start + _CHUNK])}
    entries = {}
    for row in rows:
        if row.vector is not None:
            vector = np.frombuffer(row.vector, dtype="<f4").astype(np.float32)
        elif row.media_id in earlier:
            vector = np.asarray(earlier[row.media_id], dtype=np.float32)
        else:
            continue
        if vector.shape != (row.dimension,):
            continue  # not a vector of this dimension: left to embedding again
        item_genres = set(genres.get(row.media_id, ()))
        if row.genre:
            item_genres.add(normalise_tag(row.genre))
        item_genres.discard("")
        entries[row.media_id] = Entry(_unit(vector), row.media_type, frozenset(item_genres))
    return entries


def _confirmed_genres(connection: Connection, ids: Sequence[int]) -> dict[int, list[str]]:
    """Genre tags a user or a rule set, per item (automatic tags are not confirmed)."""
    found: dict[int, list[str]] = {}
    condition = and_(media_tags.c.kind == "genre", media_tags.c.source != "auto")
    for start in range(0, len(ids), _CHUNK):
        query = select(media_tags.c.media_id, media_tags.c.tag_norm).where(
            condition, media_tags.c.media_id.in_(list(ids[start : start + _CHUNK]))
        )
        for media_id, tag_norm in connection.execute(query):
            found.setdefault(media_id, []).append(tag_norm)
    return found


def _unit(vector: Vectors) -> Vectors:
    import numpy as np

    length = float(np.linalg.norm(vector))
    return vector / length if length > 0 else vector
