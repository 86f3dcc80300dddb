"""Engines for SQLite (WAL, busy timeout, foreign keys) and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DataError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)

from atlas.errors import AtlasError, InvalidInput, Unavailable
from atlas.paths import os_errors, user_path

__all__ = ["database_errors", "describe_url", "make_engine", "normalise_url"]


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


def make_engine(url: str, *, busy_timeout_s: float = 10.0) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and foreign keys.

    Creates the parent folder of a SQLite file. Raises ``InvalidInput`` for a
    malformed URL and ``Unavailable`` when the driver is not installed.
    """
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
        kwargs["connect_args"] = {"timeout": busy_timeout_s}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError:
        raise InvalidInput(
            f"database URL {describe_url(url)!r} names a driver SQLAlchemy does not have"
        ) from None
    except ModuleNotFoundError as exc:
        raise Unavailable(
            f"the database driver {exc.name!r} is not installed; "
            "install Atlas with the 'postgres' extra: pip install 'atlas-media[postgres]'"
        ) from None

    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout_s)
    return engine


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
    where = describe_url(str(engine.url))
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
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
