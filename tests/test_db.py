"""The schema: migrations, their agreement with tables.py, SQLite pragmas."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from atlas.db import make_engine, migration_status, upgrade
from atlas.db.tables import metadata


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
        "task_logs": ["id", "task_id", "task_type", "status", "duration_ms", "retries",
                      "error_reason", "created_at"],
        "user_feedback": ["id", "media_id", "feedback_type", "original_value",
                          "corrected_value", "confidence_score", "timestamp", "source"],
        "learning_rules": ["id", "rule_type", "condition_text", "action_text", "confidence",
                           "created_from_feedback", "usage_count", "success_rate", "created_at"],
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
