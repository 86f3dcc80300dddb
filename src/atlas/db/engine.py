"""Engines for SQLite (WAL, busy timeout, foreign keys) and PostgreSQL."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DataError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)

from atlas.errors import AtlasError, InvalidInput, Unavailable, missing_extra
from atlas.paths import os_errors, user_path

__all__ = [
    "database_errors",
    "describe_url",
    "make_engine",
    "no_statement_timeout",
    "normalise_url",
]


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def make_engine(
    url: str, *, busy_timeout_s: float = 10.0, database_timeout_s: float = 30.0
) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and foreign keys.

    PostgreSQL connections (libpq drivers) give up connecting after
    ``database_timeout_s`` (libpq waits at least 2 s) and cancel any statement
    that runs longer (``statement_timeout``), unless the URL sets its own
    ``connect_timeout`` or ``statement_timeout``. Creates the parent folder of a
    SQLite file. Raises ``InvalidInput`` for a malformed URL and ``Unavailable``
    when the driver is not installed.
    """
    where = describe_url(url)
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    _check_backend(url, parsed.get_backend_name())

    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _make_folder_of(parsed.database)
            # Connections kept open: a server's request threads (8 by default) and its
            # task threads each hold one; beyond the pool, connections are opened and
            # closed per use (cheap for a file, but each runs the PRAGMAs below).
            kwargs["pool_size"] = _SQLITE_POOL_SIZE
        kwargs["connect_args"] = {"timeout": busy_timeout_s}
    else:
        kwargs["pool_pre_ping"] = True
        if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in _LIBPQ:
            parsed = _with_timeouts(parsed, database_timeout_s)
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError:
        raise InvalidInput(
            f"database URL {describe_url(url)!r} names a driver SQLAlchemy does not have"
        ) from None
    except ModuleNotFoundError as exc:
        raise missing_extra(f"the database driver {exc.name!r}", "postgres") from None

    # For messages: the URL as the user gave it, and the timeout its statements run under.
    engine.update_execution_options(atlas_where=where)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout_s)
    else:
        engine.update_execution_options(atlas_database_timeout_s=database_timeout_s)
    return engine


_SQLITE_POOL_SIZE = 12

#: Drivers that hand ``connect_timeout`` and ``options`` to libpq (or mimic it).
_LIBPQ = {"psycopg", "psycopg2", "psycopg2cffi"}


def _with_timeouts(url: URL, timeout_s: float) -> URL:
    """``url`` with libpq's ``connect_timeout`` and a ``statement_timeout`` option.

    A statement timeout already in the URL's ``options`` wins (the server applies
    ``-c`` settings in order); other options (``-csearch_path=...``) are kept.
    """
    query = dict(url.query)
    if "connect_timeout" not in query:
        query["connect_timeout"] = str(max(1, math.ceil(timeout_s)))
    given = query.get("options", "")
    given = " ".join(given) if isinstance(given, tuple) else given
    ours = f"-c statement_timeout={max(1, round(timeout_s * 1000))}"
    query["options"] = f"{ours} {given}".strip()
    return url.set(query=query)


@contextlib.contextmanager
def no_statement_timeout(connection: Connection) -> Iterator[None]:
    """Run the block without ``database_timeout_s`` cutting its statements short.

    For work that is meant to take long (migrations rewriting big tables). The
    connection gets its own default back afterwards, also when the block fails.
    A no-op on SQLite.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.exec_driver_sql("SET statement_timeout = 0")
    connection.commit()
    try:
        yield
    finally:
        try:
            if connection.in_transaction():
                connection.rollback()
            connection.exec_driver_sql("RESET statement_timeout")
            connection.commit()
        except DBAPIError:
            # A broken connection must not go back to the pool without its timeout.
            connection.invalidate()


#: The relational stores Atlas runs on (SQLAlchemy backend names).
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def _check_backend(url: str, backend: str) -> None:
    """Refuse a database Atlas does not run on, with one line (``InvalidInput``)."""
    if backend not in SUPPORTED_BACKENDS:
        raise InvalidInput(
            f"database URL {describe_url(url)!r}: Atlas runs on SQLite (sqlite:///PATH) "
            f"or PostgreSQL (postgresql://HOST/DB), not {backend!r}"
        )


def _make_folder_of(database: str) -> None:
    """Create the folder of a SQLite file; ``InvalidInput`` when that cannot be done."""
    file = user_path(database, what="SQLite database file")
    with os_errors(file.parent, "cannot be created for the SQLite database"):
        file.parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINTs;
    # let SQLAlchemy emit BEGIN itself (the documented recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # engine.begin() is how Atlas writes: IMMEDIATE takes the write lock up
        # front, so two writers queue on the busy timeout instead of failing
        # half-way with SQLITE_BUSY. Reads (engine.connect()) begin deferred and
        # never hold the write lock, so a long read does not stall writers.
        immediate = connection.get_execution_options().get("atlas_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    engine.__class__ = _SQLiteEngine


class _SQLiteEngine(Engine):
    """An engine whose ``begin()`` marks its transaction as a write (see above)."""

    __slots__ = ()

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.connect() as connection:
            connection.execution_options(atlas_immediate=True)
            with connection.begin():
                yield connection


@contextlib.contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn driver errors a user can act on into ``Unavailable`` with one clear line."""
    try:
        yield
    except OperationalError as exc:
        raise Unavailable(_explain(engine, exc)) from None
    except DBAPIError as exc:
        error = explain_database_error(exc, describe_url(str(engine.url)))
        if error is None:  # an integrity error (its caller knows what clashed), a bug
            raise
        raise error from None


def _explain(engine: Engine, exc: DBAPIError) -> str:
    options = engine.get_execution_options()
    where = options.get("atlas_where") or describe_url(str(engine.url))
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    timeout_s = options.get("atlas_database_timeout_s")
    if "statement timeout" in detail:
        limit = f"within {timeout_s:g} s" if timeout_s else "within its statement timeout"
        return (
            f"the database {where} did not finish a statement {limit}; check that it is "
            "not overloaded or locked by a stalled transaction, or raise database_timeout_s"
        )
    if "timeout expired" in detail:
        limit = f"within {timeout_s:g} s" if timeout_s else "in time"
        return (
            f"the database {where} did not answer {limit} while connecting; check that it "
            "is running and not overloaded, or raise database_timeout_s"
        )
    if "locked" in detail:
        return f"the database {where} is locked by another process; try again when it is done"
    if "unable to open" in detail:
        return f"the database {where} cannot be opened; check the path and its permissions"
    if "connection" in detail.lower() or "connect" in detail.lower():
        return f"cannot connect to the database {where}: {detail}"
    return f"database error on {where}: {detail}"


def explain_database_error(exc: DBAPIError, where: str | None = None) -> AtlasError | None:
    """What a driver error other than an ``OperationalError`` means to a user, if anything.

    A value the database refuses (PostgreSQL: a number out of range) is
    ``InvalidInput``; a SQLite file that is not a database or is damaged is
    ``Unavailable``. ``None`` for the rest: integrity errors and bugs.
    """
    where = where or "in use"
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
    if isinstance(exc, DataError):
        return InvalidInput(f"the database {where} refused a value: {detail}")
    if type(exc) is DatabaseError:  # SQLite: "file is not a database", "disk image is malformed"
        return Unavailable(
            f"the database {where} is damaged or is not an Atlas database ({detail}); "
            "restore it from a backup, or set database_url to another database"
        )
    return None
