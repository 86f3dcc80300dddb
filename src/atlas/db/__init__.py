"""Storage: tables, engines and migrations of the relational store."""

from atlas.db.engine import database_errors, describe_url, make_engine, no_statement_timeout
from atlas.db.migrate import MigrationStatus, migration_status, upgrade
from atlas.db.types import UTCDateTime, utcnow

__all__ = [
    "MigrationStatus",
    "UTCDateTime",
    "database_errors",
    "describe_url",
    "make_engine",
    "migration_status",
    "no_statement_timeout",
    "upgrade",
    "utcnow",
]
