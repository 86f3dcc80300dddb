"""Search changes: a log of which media items' searchable text changed.

Triggers on ``media`` (title, genre, description, type), ``media_tags`` and
``transcripts`` append the media id of every insert, update and delete, whoever
writes (any process, any code path). The lexical index keeps the last id it read
and re-reads only the items logged after it (:mod:`atlas.embeddings.lexical_sync`).
On PostgreSQL the triggers stand aside while ``atlas.copying`` is set in the
transaction: a store copy writes the source's log itself.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# (table, the column holding the media id, the columns whose update matters)
_WATCHED = (
    ("media", "id", "title, genre, description, media_type"),
    ("media_tags", "media_id", "media_id, tag, kind, source"),
    ("transcripts", "media_id", "media_id, text"),
)


def upgrade() -> None:
    op.create_table(
        "search_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    for table, column, updated in _WATCHED:
        op.execute(
            f"CREATE TRIGGER search_changes_{table}_insert AFTER INSERT ON {table} "
            f"BEGIN INSERT INTO search_changes (media_id) VALUES (NEW.{column}); END"
        )
        op.execute(
            f"CREATE TRIGGER search_changes_{table}_update AFTER UPDATE OF {updated} "
            f"ON {table} BEGIN "
            f"INSERT INTO search_changes (media_id) VALUES (OLD.{column}); "
            f"INSERT INTO search_changes (media_id) SELECT NEW.{column} "
            f"WHERE NEW.{column} IS NOT OLD.{column}; END"
        )
        op.execute(
            f"CREATE TRIGGER search_changes_{table}_delete AFTER DELETE ON {table} "
            f"BEGIN INSERT INTO search_changes (media_id) VALUES (OLD.{column}); END"
        )


def _postgres_triggers() -> None:
    for table, column, updated in _WATCHED:
        op.execute(
            f"CREATE FUNCTION search_changes_{table}() RETURNS trigger AS $$ BEGIN "
            # A store copy (atlas.db.transfer) brings the source's log row for row.
            f"IF current_setting('atlas.copying', true) = 'on' THEN RETURN NULL; END IF; "
            f"IF TG_OP <> 'INSERT' THEN "
            f"INSERT INTO search_changes (media_id) VALUES (OLD.{column}); END IF; "
            f"IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.{column} <> OLD.{column}) THEN "
            f"INSERT INTO search_changes (media_id) VALUES (NEW.{column}); END IF; "
            f"RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            f"CREATE TRIGGER search_changes_{table} AFTER INSERT OR DELETE OR UPDATE OF "
            f"{updated} ON {table} FOR EACH ROW EXECUTE FUNCTION search_changes_{table}()"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _column, _updated in _WATCHED:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS search_changes_{table} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS search_changes_{table}()")
        else:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS search_changes_{table}_{event}")
    op.drop_table("search_changes")
