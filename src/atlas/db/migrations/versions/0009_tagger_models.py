"""Tagging: the tagger's text model fine-tuned on the library's confirmed tags.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tagger_models",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("training", sa.JSON, nullable=False),
        sa.Column("weights", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tagger_models"),
    )
    op.create_index("ix_tagger_models_model", "tagger_models", ["model"])


def downgrade() -> None:
    op.drop_index("ix_tagger_models_model", table_name="tagger_models")
    op.drop_table("tagger_models")
