"""Automatic tagging: the tags a learned cut-off held back at the last tagging.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_tag_inputs") as batch:
        batch.add_column(sa.Column("withheld", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("media_tag_inputs") as batch:
        batch.drop_column("withheld")
