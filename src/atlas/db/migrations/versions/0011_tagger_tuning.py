"""Tagging: what the tagger learned about the library from its confirmed items.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tagger_tuning",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("genres", sa.Integer, nullable=False),
        sa.Column("weights", sa.JSON, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("genre_floor", sa.Float, nullable=False),
        sa.Column("scores", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tagger_tuning"),
    )
    op.create_index("ix_tagger_tuning_model", "tagger_tuning", ["model"])


def downgrade() -> None:
    op.drop_index("ix_tagger_tuning_model", table_name="tagger_tuning")
    op.drop_table("tagger_tuning")
