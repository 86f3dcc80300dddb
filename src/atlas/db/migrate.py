"""Apply and inspect the Alembic migrations, in-process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from sqlalchemy import Connection, Engine, text

from atlas.db.engine import database_errors, describe_url, no_statement_timeout
from atlas.errors import Conflict

__all__ = ["MigrationStatus", "migration_status", "upgrade"]

_SCRIPT_LOCATION = Path(__file__).with_name("migrations")
# Any constant will do: it only has to be the same for every Atlas process.
_PG_LOCK_KEY = 0x41544C4153


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def migration_status(engine: Engine) -> MigrationStatus:
    """Where the database stands against the migrations shipped with Atlas.

    Raises ``Conflict`` for a database stamped with a revision this Atlas does
    not ship (made by a newer Atlas, or not an Atlas database).
    """
    script = _script()
    head = script.get_current_head()
    assert head is not None
    with database_errors(engine), engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    try:
        pending = [revision.revision for revision in script.iterate_revisions(head, current)]
    except RevisionError:
        raise Conflict(
            f"the database {describe_url(str(engine.url))} is at schema revision {current!r}, "
            f"which this version of Atlas does not know (its newest is {head!r}); "
            "it was made by a newer Atlas or another program: upgrade Atlas, or set "
            "database_url to another database"
        ) from None
    return MigrationStatus(current=current, head=head, pending=tuple(reversed(pending)))


def upgrade(engine: Engine) -> MigrationStatus:
    """Apply every pending migration; a no-op when the schema is current.

    Idempotent and safe to run from several processes at once: PostgreSQL takes
    an advisory lock, SQLite serialises on its write lock. Each migration runs in
    its own transaction, with no statement timeout.
    """
    status = migration_status(engine)
    if status.up_to_date:
        return status
    with (
        database_errors(engine),
        engine.connect() as connection,
        _migration_lock(connection),
        # A migration may rewrite a big table; database_timeout_s must not cut it
        # short (each migration is its own transaction, so a kill loses nothing).
        no_statement_timeout(connection),
    ):
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
    return migration_status(engine)


@contextlib.contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
        connection.commit()
