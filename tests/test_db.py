"""The schema: migrations, their agreement with tables.py, SQLite pragmas."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from atlas.db import database_errors, describe_url, make_engine, migration_status, upgrade
from atlas.db.engine import no_statement_timeout
from atlas.db.tables import metadata
from atlas.errors import Unavailable
from conftest import POSTGRES_URL, raised_by


def test_migrations_build_exactly_the_schema_of_tables_py(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_migrate_is_idempotent_and_reports_status(database_url):
    engine = make_engine(database_url)
    before = migration_status(engine)
    assert before.current is None and before.pending
    after = upgrade(engine)
    assert after.up_to_date and after.current == after.head
    assert upgrade(engine) == after
    engine.dispose()


def test_seed_tables_keep_the_seed_columns(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    columns = {
        table: [column["name"] for column in inspect(engine).get_columns(table)]
        for table in ("task_logs", "user_feedback", "learning_rules")
    }
    seed = {
        "task_logs": [
            "id",
            "task_id",
            "task_type",
            "status",
            "duration_ms",
            "retries",
            "error_reason",
            "created_at",
        ],
        "user_feedback": [
            "id",
            "media_id",
            "feedback_type",
            "original_value",
            "corrected_value",
            "confidence_score",
            "timestamp",
            "source",
        ],
        "learning_rules": [
            "id",
            "rule_type",
            "condition_text",
            "action_text",
            "confidence",
            "created_from_feedback",
            "usage_count",
            "success_rate",
            "created_at",
        ],
    }
    for table, names in seed.items():
        assert columns[table][: len(names)] == names
    engine.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_s=7)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 7000
    engine.dispose()


def test_check_constraints_carry_the_names_tables_py_gives_them(database_url):
    from sqlalchemy import CheckConstraint

    engine = make_engine(database_url)
    upgrade(engine)
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        expected = {
            constraint.name
            for constraint in table.constraints
            if isinstance(constraint, CheckConstraint) and constraint.name
        }
        # Boolean columns may add unnamed checks on some backends; compare named ones.
        found = {c["name"] for c in inspector.get_check_constraints(table.name) if c["name"]}
        assert found == expected, table.name
    engine.dispose()


# --- timeouts on PostgreSQL ----------------------------------------------------------

requires_postgres = pytest.mark.skipif(
    POSTGRES_URL is None, reason="set ATLAS_TEST_POSTGRES_URL to run against PostgreSQL"
)


@requires_postgres
def test_a_statement_longer_than_the_database_timeout_is_cancelled_with_one_clear_line():
    assert POSTGRES_URL is not None
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3Dpg_catalog"
    engine = make_engine(url, database_timeout_s=1)
    try:
        with engine.connect() as connection:
            # The URL's own options survive next to the timeout.
            assert connection.execute(text("SHOW search_path")).scalar() == "pg_catalog"
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "1s"

        def sleep() -> None:
            with database_errors(engine), engine.connect() as connection:
                connection.execute(text("SELECT pg_sleep(5)"))

        raised = raised_by(sleep)
        assert isinstance(raised, Unavailable)
        assert str(raised) == (
            f"the database {describe_url(url)} did not finish a statement within 1 s; "
            "check that it is not overloaded or locked by a stalled transaction, "
            "or raise database_timeout_s"
        )
        # The connection is fine afterwards: the failure was transient.
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


@requires_postgres
def test_a_statement_timeout_in_the_url_wins_over_the_setting():
    assert POSTGRES_URL is not None
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-cstatement_timeout%3D7s"
    engine = make_engine(url, database_timeout_s=1)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "7s"
    finally:
        engine.dispose()


@requires_postgres
def test_long_work_runs_without_the_statement_timeout_which_comes_back_afterwards():
    assert POSTGRES_URL is not None
    engine = make_engine(POSTGRES_URL, database_timeout_s=1)
    try:
        with engine.connect() as connection:
            with no_statement_timeout(connection):
                assert connection.execute(text("SHOW statement_timeout")).scalar() == "0"
                connection.execute(text("SELECT pg_sleep(1.5)"))
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "1s"
            # Also when the work fails half-way, in a transaction that is aborted.
            with pytest.raises(DBAPIError), no_statement_timeout(connection):
                connection.execute(text("SELECT 1 / 0"))
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "1s"
    finally:
        engine.dispose()


def test_a_postgresql_server_that_accepts_and_never_answers_fails_within_the_connect_timeout(
    silent_server,
):
    pytest.importorskip("psycopg")
    host, port = silent_server
    url = f"postgresql://atlas@{host}:{port}/atlas"
    engine = make_engine(url, database_timeout_s=2)
    try:
        raised = raised_by(lambda: migration_status(engine))
    finally:
        engine.dispose()
    assert isinstance(raised, Unavailable)
    assert str(raised) == (
        f"the database {describe_url(url)} did not answer within 2 s while "
        "connecting; check that it is running and not overloaded, or raise database_timeout_s"
    )
