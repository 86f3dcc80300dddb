"""Storage: tables, engines and migrations of the relational store."""

from atlas.db.engine import (
    database_errors,
    describe_url,
    explain_database_error,
    make_engine,
    no_statement_timeout,
)
from atlas.db.ids import MAX_ID, check_id, check_ids, fits_id
from atlas.db.migrate import MigrationStatus, migration_status, upgrade
from atlas.db.types import UTCDateTime, utcnow

__all__ = [
    "MAX_ID",
    "MigrationStatus",
    "UTCDateTime",
    "check_id",
    "check_ids",
    "database_errors",
    "describe_url",
    "explain_database_error",
    "fits_id",
    "make_engine",
    "migration_status",
    "no_statement_timeout",
    "upgrade",
    "utcnow",
]
