"""Embeddings: which media item is embedded with which model, and library clusters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_embeddings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("doc_hash", sa.String(64), nullable=False),
        sa.Column("doc_chars", sa.Integer, nullable=False),
        sa.Column("embedded_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media.id"],
            name="fk_media_embeddings_media_id_media",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("media_id", "model", name="uq_media_embeddings_media_id_model"),
        sa.CheckConstraint("dimension > 0", name=op.f("ck_media_embeddings_dimension")),
    )
    op.create_index("ix_media_embeddings_model", "media_embeddings", ["model"])

    op.create_table(
        "clusters",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("cluster", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("method", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("model", "cluster", name="uq_clusters_model_cluster"),
    )

    op.create_table(
        "media_clusters",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("cluster", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media.id"], name="fk_media_clusters_media_id_media", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("media_id", "model", name="uq_media_clusters_media_id_model"),
    )
    op.create_index("ix_media_clusters_model_cluster", "media_clusters", ["model", "cluster"])


def downgrade() -> None:
    op.drop_index("ix_media_clusters_model_cluster", table_name="media_clusters")
    op.drop_table("media_clusters")
    op.drop_table("clusters")
    op.drop_index("ix_media_embeddings_model", table_name="media_embeddings")
    op.drop_table("media_embeddings")
