"""Automatic tagging: what the tagger read of each item (vector, input hash).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_tag_inputs",
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("input_hash", sa.String(64)),
        sa.Column("tagged_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("media_id", name="pk_media_tag_inputs"),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media.id"],
            name="fk_media_tag_inputs_media_id_media",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("dimension > 0", name=op.f("ck_media_tag_inputs_dimension")),
    )


def downgrade() -> None:
    op.drop_table("media_tag_inputs")
