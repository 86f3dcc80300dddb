"""Embedding vectors in the database, and their changes in the change log.

``media_embeddings.vector`` holds each recorded vector (float32 bytes), so a
long-running process (``atlas serve``) can keep an up-to-date copy in memory:
the embedded vector store does not show one process the vectors another process
wrote after it opened the store. Triggers on ``media_embeddings`` append the media
id of every insert, update and delete to ``search_changes`` (migration 0015), so
the copy re-reads only what changed (:mod:`atlas.embeddings.live`). Rows recorded
before this migration keep a NULL vector until their item is embedded again; the
copy reads those from the vector store.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_UPDATED = "media_id, model, dimension, doc_hash, vector, embedded_at"


def upgrade() -> None:
    with op.batch_alter_table("media_embeddings") as batch:
        batch.add_column(sa.Column("vector", sa.LargeBinary, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION search_changes_media_embeddings() RETURNS trigger AS $$ BEGIN "
            # A store copy (atlas.db.transfer) brings the source's log row for row.
            "IF current_setting('atlas.copying', true) = 'on' THEN RETURN NULL; END IF; "
            "IF TG_OP <> 'INSERT' THEN "
            "INSERT INTO search_changes (media_id) VALUES (OLD.media_id); END IF; "
            "IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.media_id <> OLD.media_id) THEN "
            "INSERT INTO search_changes (media_id) VALUES (NEW.media_id); END IF; "
            "RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER search_changes_media_embeddings AFTER INSERT OR DELETE OR UPDATE "
            f"OF {_UPDATED} ON media_embeddings FOR EACH ROW "
            "EXECUTE FUNCTION search_changes_media_embeddings()"
        )
        return
    op.execute(
        "CREATE TRIGGER search_changes_media_embeddings_insert AFTER INSERT ON media_embeddings "
        "BEGIN INSERT INTO search_changes (media_id) VALUES (NEW.media_id); END"
    )
    op.execute(
        f"CREATE TRIGGER search_changes_media_embeddings_update AFTER UPDATE OF {_UPDATED} "
        "ON media_embeddings BEGIN "
        "INSERT INTO search_changes (media_id) VALUES (OLD.media_id); "
        "INSERT INTO search_changes (media_id) SELECT NEW.media_id "
        "WHERE NEW.media_id IS NOT OLD.media_id; END"
    )
    op.execute(
        "CREATE TRIGGER search_changes_media_embeddings_delete AFTER DELETE ON media_embeddings "
        "BEGIN INSERT INTO search_changes (media_id) VALUES (OLD.media_id); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS search_changes_media_embeddings ON media_embeddings")
        op.execute("DROP FUNCTION IF EXISTS search_changes_media_embeddings()")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS search_changes_media_embeddings_{event}")
    with op.batch_alter_table("media_embeddings") as batch:
        batch.drop_column("vector")
