"""Copy the relational library into a PostgreSQL database, resumably.

Every table of :data:`atlas.db.tables.metadata` is copied with its ids, parents
before children, in batches ordered by primary key; values keep their exact form
(JSON as its text, binary as bytes, times to the microsecond). Each batch is one
transaction on the target that also records how far its table got, in the
target's bookkeeping table ``atlas_store_copy`` (outside Atlas's schema), so a copy
killed at any point is finished by starting it again: it goes on after the last
batch that committed, and a batch written twice replaces itself (upsert by
primary key). The bookkeeping also names the library the copy comes from, so a
database that holds another library is refused.

Reading never writes: a SQLite source is opened read-only.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    cast,
    create_engine,
    func,
    inspect,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DataError, IntegrityError, ProgrammingError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from atlas.db.engine import database_errors, describe_url, make_engine, normalise_url
from atlas.db.migrate import migration_status, upgrade
from atlas.db.tables import metadata
from atlas.db.types import UTCDateTime, utcnow
from atlas.errors import Conflict, InvalidInput, NotFound, Unavailable

__all__ = [
    "COPY_TABLE",
    "CopyState",
    "TableCount",
    "copy_tables",
    "count_rows",
    "finish_copy",
    "locked_target",
    "open_source",
    "open_target",
    "prepare_target",
    "reset_sequences",
    "same_database",
    "source_identity",
]

#: The target's bookkeeping table; not part of Atlas's schema.
COPY_TABLE = "atlas_store_copy"
#: The bookkeeping row that names the library being copied.
_LIBRARY = ""
#: A batch is cut early once its values weigh this much (tagger weights are large).
_BATCH_BYTES = 32 * 1024 * 1024
#: Tables the migrations themselves fill: rows there do not mean a library is present.
_SEEDED = frozenset({"task_log_fold_state"})

_bookkeeping = MetaData()
_copy_table = Table(
    COPY_TABLE,
    _bookkeeping,
    # '' for the library row, else the name of a copied table.
    Column("item", String(128), primary_key=True),
    # The library row: where the copy comes from.
    Column("source", Text, nullable=False, server_default=""),
    # The primary key of the last row copied (JSON list), NULL before the first.
    Column("last_key", Text),
    Column("copied", Integer, nullable=False, server_default=text("0")),
    Column("done", Boolean, nullable=False, server_default=text("false")),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)


@dataclass(frozen=True)
class TableCount:
    """One table after a copy: rows on both sides, and rows written by this run."""

    table: str
    source_rows: int
    target_rows: int
    copied: int

    @property
    def matches(self) -> bool:
        return self.source_rows == self.target_rows


@dataclass(frozen=True)
class CopyState:
    """What the target said about itself before this run."""

    #: A copy of the same library was begun here before.
    resumed: bool
    started_at: datetime
    #: The copy was finished and verified before (nothing is copied again).
    finished_at: datetime | None


# --- the two databases -------------------------------------------------------------


def open_source(url: str, *, busy_timeout_s: float) -> Engine:
    """An engine that reads the library's database; a SQLite file is opened read-only.

    Raises ``NotFound`` when the SQLite file does not exist and ``Conflict`` when the
    database is not a library at the schema of this Atlas.
    """
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidInput("the library's database is an in-memory SQLite database")
        path = Path(parsed.database).expanduser().resolve()
        if not path.is_file():
            raise NotFound(f"there is no library database at {path}")
        uri = f"{path.as_uri()}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, timeout=busy_timeout_s)

        engine = create_engine("sqlite://", creator=connect)
    else:
        engine = make_engine(url, busy_timeout_s=busy_timeout_s)
    try:
        status = migration_status(engine)
    except (CommandError, RevisionError):
        engine.dispose()
        raise Conflict(
            f"the database {describe_url(url)} is at a revision this Atlas does not know"
        ) from None
    except Unavailable:
        engine.dispose()
        raise
    if status.current is None:
        engine.dispose()
        raise NotFound(f"the database {describe_url(url)} holds no Atlas library")
    if not status.up_to_date:
        engine.dispose()
        raise Conflict(
            f"the library's database {describe_url(url)} is at revision {status.current}, "
            f"behind {status.head}; bring it up to date first with: atlas migrate"
        )
    return engine


def open_target(url: str) -> Engine:
    """An engine for the PostgreSQL database to copy into; anything else is refused."""
    if not url.strip():
        raise InvalidInput("the target database URL is empty")
    normalised = normalise_url(url.strip())
    try:
        parsed = make_url(normalised)
    except ArgumentError:
        raise InvalidInput(f"the target database URL {url!r} is not a valid URL") from None
    if parsed.get_backend_name() != "postgresql":
        raise InvalidInput(
            "the target database must be PostgreSQL (postgresql://user@host/dbname), "
            f"not {parsed.get_backend_name()}"
        )
    return make_engine(normalised)


def source_identity(url: str) -> str:
    """A name for the library at ``url`` that the target keeps (no password)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return f"sqlite:///{Path(parsed.database).expanduser().resolve()}"
    return describe_url(url)


def same_database(first: str, second: str) -> bool:
    """Whether two URLs name the same database (host, port, name and options)."""
    try:
        a, b = make_url(normalise_url(first)), make_url(normalise_url(second))
    except ArgumentError:
        return False
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        return source_identity(first) == source_identity(second)
    return _where(a) == _where(b)


def _where(url: URL) -> tuple[Any, ...]:
    return (url.host or "localhost", url.port or 5432, url.database, sorted(url.query.items()))


def _describe(engine: Engine) -> str:
    """The engine's database for messages, as the user named it where known."""
    where = engine.get_execution_options().get("atlas_where")
    return str(where) if where else describe_url(str(engine.url))


# --- the target: lock, check, prepare -------------------------------------------------


@contextlib.contextmanager
def locked_target(engine: Engine) -> Iterator[None]:
    """Hold the target for this copy; a second copy into it is refused, not interleaved.

    The lock belongs to a session of its own, so PostgreSQL drops it as soon as
    a killed copy's connection goes away.
    """
    with database_errors(engine), engine.connect() as connection:
        key = "atlas migrate-store " + str(
            connection.execute(
                text("SELECT current_database() || '.' || current_schema()")
            ).scalar()
        )
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": key}
        ).scalar()
        connection.commit()
        if not taken:
            raise Conflict(f"another copy into the database {_describe(engine)} is running")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
                connection.commit()


def prepare_target(engine: Engine, identity: str) -> CopyState:
    """Check that the target is empty or holds this library's copy, then migrate it.

    Raises ``Conflict`` when the target holds another library (or a copy of one).
    Idempotent: a target that was prepared before is left as it is.
    """
    where = _describe(engine)
    with database_errors(engine), engine.connect() as connection:
        names = set(inspect(connection).get_table_names())
        marker = None
        if COPY_TABLE in names:
            marker = connection.execute(
                select(_copy_table).where(_copy_table.c.item == _LIBRARY)
            ).first()
        if marker is not None and marker.source != identity:
            raise Conflict(
                f"the database {where} already holds a copy of another library "
                f"({marker.source}); copy into an empty database"
            )
        if marker is None:
            occupied = _occupied_tables(connection, names)
            if occupied:
                raise Conflict(
                    f"the database {where} already holds an Atlas library (rows in "
                    f"{', '.join(occupied[:3])}); copy into an empty database"
                )
    try:
        status = migration_status(engine)
    except (CommandError, RevisionError):
        raise Conflict(
            f"the database {where} is stamped with a revision this Atlas does not know; "
            "copy into an empty database"
        ) from None
    with _refusals(where):
        if not status.up_to_date:
            upgrade(engine)
        with database_errors(engine), engine.begin() as connection:
            _bookkeeping.create_all(connection, checkfirst=True)
            connection.execute(
                pg_insert(_copy_table)
                .values(item=_LIBRARY, source=identity, started_at=utcnow())
                .on_conflict_do_nothing(index_elements=["item"])
            )
            row = connection.execute(
                select(_copy_table).where(_copy_table.c.item == _LIBRARY)
            ).one()
    return CopyState(
        resumed=marker is not None, started_at=row.started_at, finished_at=row.finished_at
    )


@contextlib.contextmanager
def _refusals(where: str) -> Iterator[None]:
    """A target that refuses to be written (no privilege to create tables) is one line."""
    try:
        yield
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        raise InvalidInput(f"the database {where} refuses the copy: {_first_line(exc)}") from None


def _occupied_tables(connection: Connection, names: set[str]) -> list[str]:
    occupied = []
    for table in metadata.sorted_tables:
        if (
            table.name in names
            and table.name not in _SEEDED
            and connection.execute(select(literal(1)).select_from(table).limit(1)).first()
        ):
            occupied.append(table.name)
    return occupied


def finish_copy(engine: Engine) -> None:
    """Record that the copy was verified; later runs only verify again."""
    with database_errors(engine), engine.begin() as connection:
        connection.execute(
            update(_copy_table)
            .where(_copy_table.c.item == _LIBRARY, _copy_table.c.finished_at.is_(None))
            .values(finished_at=utcnow())
        )


# --- copying ---------------------------------------------------------------------------


class _JSONText(TypeDecorator[str]):
    """A JSON column written from its text as it is (no parsing, no re-encoding)."""

    impl = Text
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        return cast(bindvalue, JSON)


@dataclass
class _Progress:
    last_key: list[Any] | None
    copied: int
    done: bool


def count_rows(engine: Engine) -> dict[str, int]:
    """Rows per table of Atlas's schema."""
    with database_errors(engine), engine.connect() as connection:
        return {
            table.name: int(
                connection.execute(select(func.count()).select_from(table)).scalar_one()
            )
            for table in metadata.sorted_tables
        }


def copy_tables(
    source: Engine,
    target: Engine,
    *,
    batch_rows: int,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Copy every table not yet done; returns the rows written by this run per table.

    Resumable and idempotent (see the module docstring). ``on_progress`` gets the
    rows of each batch written, and at each table's turn the rows earlier runs wrote.
    Raises ``InvalidInput`` for a value PostgreSQL does not accept and ``Conflict``
    for a row that clashes with one already in the target.
    """
    progress = _read_progress(target)
    copied: dict[str, int] = {}
    for table in metadata.sorted_tables:
        state = progress.get(table.name, _Progress(last_key=None, copied=0, done=False))
        if state.copied and on_progress is not None:
            on_progress(state.copied)
        copied[table.name] = (
            0
            if state.done
            else _copy_table_rows(source, target, table, state, batch_rows, on_progress)
        )
    return copied


def _read_progress(target: Engine) -> dict[str, _Progress]:
    with database_errors(target), target.connect() as connection:
        rows = connection.execute(select(_copy_table).where(_copy_table.c.item != _LIBRARY))
        return {
            row.item: _Progress(
                last_key=json.loads(row.last_key) if row.last_key else None,
                copied=row.copied,
                done=row.done,
            )
            for row in rows
        }


def _copy_table_rows(
    source: Engine,
    target: Engine,
    table: Table,
    state: _Progress,
    batch_rows: int,
    on_progress: Callable[[int], None] | None,
) -> int:
    key_columns = list(table.primary_key.columns)
    # A row may point at a later row of its own table (rows go in by key, and
    # PostgreSQL checks each at once): it is written without that link, which is
    # set once the whole table is there.
    self_links = [fk.parent for fk in table.foreign_keys if fk.column.table is table]
    writable = _writable(table)
    statement = _upsert(writable, [column.name for column in key_columns])

    query = select(
        *[
            cast(column, Text).label(column.name) if isinstance(column.type, JSON) else column
            for column in table.columns
        ]
    ).order_by(*key_columns)
    if state.last_key is not None:
        last = _decode_key(key_columns, state.last_key)
        if len(key_columns) == 1:
            query = query.where(key_columns[0] > last[0])
        else:
            query = query.where(
                tuple_(*key_columns)
                > tuple_(*[literal(v, c.type) for c, v in zip(key_columns, last, strict=True)])
            )

    written = 0
    total = state.copied
    batch: list[dict[str, Any]] = []
    weight = 0

    def flush() -> None:
        nonlocal written, total, batch, weight
        key = [batch[-1][column.name] for column in key_columns]
        for link in self_links:
            own = key_columns[0].name
            for row in batch:
                if row[link.name] is not None and row[link.name] > row[own]:
                    row[link.name] = None
        total += len(batch)
        _write_batch(target, table, statement, batch, key, total)
        written += len(batch)
        if on_progress is not None:
            on_progress(len(batch))
        batch, weight = [], 0

    with database_errors(source), source.connect() as connection:
        rows = connection.execution_options(yield_per=batch_rows).execute(query)
        for row in rows:
            values = dict(row._mapping)
            batch.append(values)
            weight += _weight(values)
            if len(batch) >= batch_rows or weight >= _BATCH_BYTES:
                flush()
        if batch:
            flush()

    for link in self_links:
        _restore_links(source, target, table, writable, key_columns[0], link, batch_rows)
    with database_errors(target), target.begin() as connection:
        _save_progress(connection, table.name, last_key=None, copied=total, done=True)
    return written


def _writable(table: Table) -> Table:
    """The table as the copy writes it: plain columns, JSON passed as its text."""
    return Table(
        table.name,
        MetaData(),
        *[
            Column(
                column.name,
                _JSONText() if isinstance(column.type, JSON) else column.type,
                primary_key=column.primary_key,
                autoincrement=False,
            )
            for column in table.columns
        ],
    )


def _upsert(table: Table, keys: Sequence[str]) -> Any:
    statement = pg_insert(table)
    changes = {c.name: statement.excluded[c.name] for c in table.columns if not c.primary_key}
    if not changes:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)


def _write_batch(
    target: Engine,
    table: Table,
    statement: Any,
    batch: list[dict[str, Any]],
    key: list[Any],
    total: int,
) -> None:
    first = ", ".join(str(batch[0][c.name]) for c in table.primary_key.columns)
    last = ", ".join(str(v) for v in key)
    span = f"{table.name} (key {first})" if len(batch) == 1 else f"{table.name} ({first} to {last})"
    try:
        with database_errors(target), target.begin() as connection:
            # The copy brings the source's search-change log; the target's
            # triggers (migration 0015) must not log the copied rows again.
            connection.execute(text("SELECT set_config('atlas.copying', 'on', true)"))
            connection.execute(statement, batch)
            _save_progress(connection, table.name, last_key=key, copied=total, done=False)
    except DataError as exc:
        raise InvalidInput(f"a row of {span} does not fit PostgreSQL: {_first_line(exc)}") from None
    except IntegrityError as exc:
        raise Conflict(
            f"a row of {span} clashes with the target database: {_first_line(exc)}"
        ) from None


def _restore_links(
    source: Engine,
    target: Engine,
    table: Table,
    writable: Table,
    key: Column[Any],
    link: Column[Any],
    batch_rows: int,
) -> None:
    """Set the links to later rows that the batches left out; idempotent."""
    statement = (
        update(writable)
        .where(writable.c[key.name] == bindparam("_key"))
        .values({link.name: bindparam("_link")})
    )
    with database_errors(source), source.connect() as connection:
        rows = connection.execution_options(yield_per=batch_rows).execute(
            select(key, link).where(link > key).order_by(key)
        )
        for chunk in rows.partitions(batch_rows):
            try:
                with database_errors(target), target.begin() as writer:
                    writer.execute(statement, [{"_key": k, "_link": v} for k, v in chunk])
            except IntegrityError as exc:
                raise Conflict(
                    f"a link of {table.name}.{link.name} cannot be set in the target "
                    f"database: {_first_line(exc)}"
                ) from None


def _save_progress(
    connection: Connection, item: str, *, last_key: list[Any] | None, copied: int, done: bool
) -> None:
    values: dict[str, Any] = {"copied": copied, "done": done}
    if last_key is not None:
        values["last_key"] = json.dumps([_encode(value) for value in last_key])
    statement = pg_insert(_copy_table).values(item=item, started_at=utcnow(), **values)
    connection.execute(statement.on_conflict_do_update(index_elements=["item"], set_=values))


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _decode_key(columns: Sequence[Column[Any]], values: Sequence[Any]) -> list[Any]:
    decoded = []
    for column, value in zip(columns, values, strict=True):
        if value is not None and column.type.python_type is date:
            value = date.fromisoformat(value)
        decoded.append(value)
    return decoded


def _weight(values: Mapping[str, Any]) -> int:
    return sum(len(v) for v in values.values() if isinstance(v, (bytes, str))) + 8 * len(values)


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    detail = str(orig if orig is not None else exc).strip().splitlines()
    return detail[0] if detail else type(exc).__name__


# --- after the copy ---------------------------------------------------------------------


def reset_sequences(engine: Engine) -> int:
    """Move every id sequence past the largest id, so new rows get fresh ids.

    Idempotent. Returns how many sequences were set.
    """
    reset = 0
    with database_errors(engine), engine.begin() as connection:
        for table in metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            if len(keys) != 1 or not isinstance(keys[0].type, Integer):
                continue
            sequence = connection.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": keys[0].name},
            ).scalar()
            if sequence is None:
                continue
            highest = connection.execute(select(func.max(keys[0]))).scalar()
            # setval(s, n, false): the next id is n itself (1 for an empty table).
            connection.execute(
                text("SELECT setval(:sequence, :value, :called)"),
                {
                    "sequence": sequence,
                    "value": highest if highest is not None else 1,
                    "called": highest is not None,
                },
            )
            reset += 1
    return reset
