"""In-memory indexes of a library, kept current from its change log.

Triggers (migrations 0015 and 0016) append the media id of every insert, update
and delete of an item's searchable text (title, genre, description, type, tags,
transcript) and of its stored vectors to ``search_changes``, whichever process
writes. A process keeps each index it built (the lexical index, the vectors of
a model) with the last change id it has read (a :class:`ChangeFeed`). Before the
index is used, :func:`kept_current` asks for the log's newest id (one primary-key
lookup, without a lock: concurrent requests of a server do not queue behind each
other's lookup); when something changed, it reads the changes after that id,
re-reads only those items and makes the next index from the cached one. A
deleted item has no row left and leaves the index. An index is built from
scratch only on first use, or when the change log no longer reaches back to the
cached index's last id (the log was pruned).

On PostgreSQL a transaction may commit a change with a lower id than one
already read (ids are taken at insert, not at commit), so ids skipped below the
last one read are asked for again on later refreshes until they appear or are
older than :data:`GAP_WAIT_S` (a rolled-back insert leaves its id unused); until
then the check before each use also looks them up (one more primary-key lookup).

The log is pruned to its last :data:`KEEP_CHANGES` rows when it has grown past
twice that; an index older than the pruned part is simply rebuilt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.exc import OperationalError

from atlas.db import database_errors
from atlas.db.tables import search_changes
from atlas.memo import Memo

__all__ = ["GAP_WAIT_S", "KEEP_CHANGES", "ChangeFeed", "Changes", "Tracked", "kept_current"]

#: How long an id skipped in the change log is waited for (see the module docstring).
GAP_WAIT_S = 600.0
#: Change-log rows kept when it is pruned.
KEEP_CHANGES = 50_000
#: How far back from the newest id a new feed looks for ids still to be committed.
_GAP_WINDOW = 1000
#: At most this many awaited ids are looked up without the refresh lock.
_AWAITED_CHECKED = 500

T = TypeVar("T")


@dataclass(frozen=True)
class Changes:
    """What the log holds after a feed's position: the items, and the log rows read."""

    media_ids: frozenset[int]
    row_ids: tuple[int, ...] = ()
    #: The oldest id still in the log (0 when nothing was read).
    first_id: int = 0


@dataclass
class ChangeFeed:
    """A reader's position in the change log: the last id read and the ids still awaited."""

    last_id: int
    #: Skipped change ids still awaited, with when they were first missed.
    gaps: dict[int, float] = field(default_factory=dict)

    @classmethod
    def start(cls, connection: Connection) -> ChangeFeed:
        """The log's position now; read it before the data, so a change after it is seen."""
        last_id = newest_change(connection)
        recent = connection.scalars(
            select(search_changes.c.id).where(search_changes.c.id > last_id - _GAP_WINDOW)
        ).all()
        feed = cls(last_id)
        _note_gaps(feed.gaps, recent, max(0, last_id - _GAP_WINDOW), last_id)
        return feed

    def is_current(self, connection: Connection) -> bool:
        """Nothing to read: no change after the last id read, and none of the ids
        awaited has arrived (most never do: a rolled-back insert leaves its id unused,
        and searches must not take the refresh path for as long as it is awaited)."""
        awaited = list(self.gaps)
        if len(awaited) > _AWAITED_CHECKED:
            return False  # many ids awaited: the refresh reads them in one go
        if newest_change(connection) != self.last_id:
            return False
        if not awaited:
            return True
        arrived = select(search_changes.c.id).where(search_changes.c.id.in_(awaited))
        return connection.execute(arrived.limit(1)).first() is None

    def read(self, connection: Connection) -> Changes | None:
        """The changes after this position (and the awaited ids that arrived), not yet
        taken; ``None`` when the log cannot bring a reader here up to date."""
        now = time.monotonic()
        self.gaps = {i: t for i, t in self.gaps.items() if now - t < GAP_WAIT_S}
        newest = newest_change(connection)
        if newest < self.last_id:
            return None  # the log restarted: another database at this address
        if newest == self.last_id and not self.gaps:
            return Changes(frozenset())
        wanted = search_changes.c.id > self.last_id
        if self.gaps:
            wanted = wanted | search_changes.c.id.in_(list(self.gaps))
        rows = connection.execute(
            select(search_changes.c.id, search_changes.c.media_id).where(wanted)
        ).all()
        if not rows:
            return Changes(frozenset())
        first_id = connection.execute(select(func.min(search_changes.c.id))).scalar() or 0
        if first_id > self.last_id + 1 and self.last_id:
            return None  # pruned past what this reader has read
        return Changes(
            frozenset(row.media_id for row in rows), tuple(row.id for row in rows), first_id
        )

    def take(self, changes: Changes, engine: Engine) -> None:
        """Move past ``changes``, once the index holds them; prunes a long log."""
        read = set(changes.row_ids)
        new_ids = sorted(i for i in read if i > self.last_id)
        gaps = {i: t for i, t in self.gaps.items() if i not in read}
        if new_ids:
            _note_gaps(gaps, new_ids, self.last_id, new_ids[-1])
        self.gaps = gaps
        if new_ids:
            # Last: a reader without the lock that sees the new position also sees the
            # index that holds these changes (the caller replaced it first).
            self.last_id = new_ids[-1]
            if self.last_id - changes.first_id > 2 * KEEP_CHANGES:
                _prune(engine, self.last_id - KEEP_CHANGES)


@dataclass
class Tracked(Generic[T]):
    """An index with its position in the change log; ``lock`` serialises refreshes."""

    value: T
    feed: ChangeFeed
    lock: threading.Lock = field(default_factory=threading.Lock)


def kept_current(
    memo: Memo[str, Tracked[T]],
    key: str,
    engine: Engine,
    build: Callable[[Connection], T],
    update: Callable[[Connection, T, frozenset[int]], T],
    connection: Connection | None = None,
) -> T:
    """The index cached under ``key``, current as of this call.

    ``build(connection)`` makes it from the whole library; ``update(connection,
    index, media_ids)`` makes the next index from a cached one and the items
    that changed (read in the same connection as the changes). ``connection``:
    the caller's read connection, for the check that nothing changed (a refresh
    reads in a connection of its own, under the index's lock).
    """
    built: list[Tracked[T]] = []

    def make() -> Tracked[T]:
        built.append(_build(engine, build))
        return built[0]

    tracked = memo.get(key, make)
    if built:
        return tracked.value
    if connection is not None:
        if tracked.feed.is_current(connection):
            return tracked.value
    else:
        with database_errors(engine), engine.connect() as checking:
            if tracked.feed.is_current(checking):
                return tracked.value
    with tracked.lock:
        with database_errors(engine), engine.connect() as connection:
            changes = tracked.feed.read(connection)
            if changes is not None and changes.media_ids:
                # The index first, then the position (see ChangeFeed.take).
                tracked.value = update(connection, tracked.value, changes.media_ids)
        if changes is None:
            tracked = _build(engine, build)
            memo.put(key, tracked)
        else:
            tracked.feed.take(changes, engine)
        return tracked.value


def _build(engine: Engine, build: Callable[[Connection], T]) -> Tracked[T]:
    with database_errors(engine), engine.connect() as connection:
        feed = ChangeFeed.start(connection)
        return Tracked(build(connection), feed)


def newest_change(connection: Connection) -> int:
    """The change log's newest id (0 when empty): one primary-key lookup."""
    return int(connection.execute(select(func.max(search_changes.c.id))).scalar() or 0)


def _note_gaps(gaps: dict[int, float], seen: Iterable[int], after: int, upto: int) -> None:
    present = set(seen)
    now = time.monotonic()
    for missing in range(max(after + 1, 1), upto):
        if missing not in present:
            gaps.setdefault(missing, now)


def _prune(engine: Engine, below: int) -> None:
    """Housekeeping: drop old change-log rows; a busy database is left for next time."""
    try:
        with engine.begin() as connection:
            connection.execute(delete(search_changes).where(search_changes.c.id < below))
    except OperationalError:
        return
