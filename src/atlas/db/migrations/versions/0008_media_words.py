"""Media: the content words of an item's texts, stored with the hash they were made from.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26

Existing items get their words the next time a text changes or the feedback loop
runs; until then readers compute them (see atlas.media.words).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.add_column(sa.Column("words", sa.Text))
        batch.add_column(sa.Column("words_key", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.drop_column("words_key")
        batch.drop_column("words")
