"""Transcripts: wall time, device, compute type, source fingerprint and detail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SOURCE_CHECK = "source IN ('whisper', 'sidecar', 'embedded')"


def upgrade() -> None:
    with op.batch_alter_table("transcripts") as batch:
        batch.add_column(sa.Column("wall_time_s", sa.Float))
        batch.add_column(sa.Column("device", sa.String(16)))
        batch.add_column(sa.Column("compute_type", sa.String(32)))
        batch.add_column(sa.Column("content_hash", sa.String(80)))
        batch.add_column(sa.Column("source_detail", sa.Text))
        # op.f(): the name is final; the naming convention must not prefix it again.
        batch.create_check_constraint(op.f("ck_transcripts_source"), _SOURCE_CHECK)


def downgrade() -> None:
    with op.batch_alter_table("transcripts") as batch:
        batch.drop_constraint(op.f("ck_transcripts_source"), type_="check")
        batch.drop_column("source_detail")
        batch.drop_column("content_hash")
        batch.drop_column("compute_type")
        batch.drop_column("device")
        batch.drop_column("wall_time_s")
