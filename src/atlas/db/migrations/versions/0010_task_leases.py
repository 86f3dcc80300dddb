"""Tasks: leases, so work held by a process that died is taken again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(160)))
        batch.add_column(sa.Column("lease_expires_at", UTCDateTime))
        batch.add_column(sa.Column("not_before", UTCDateTime))
        batch.add_column(sa.Column("enqueued_at", UTCDateTime))
        batch.add_column(sa.Column("log_id", sa.Integer))
        batch.add_column(
            sa.Column("lost_runs", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("handbacks", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column(
                "cancel_requested", sa.Boolean, nullable=False, server_default=sa.text("false")
            )
        )
    op.create_index("ix_tasks_lease_expires_at", "tasks", ["lease_expires_at"])
    op.create_index("ix_tasks_lease_owner", "tasks", ["lease_owner"])


def downgrade() -> None:
    op.drop_index("ix_tasks_lease_owner", table_name="tasks")
    op.drop_index("ix_tasks_lease_expires_at", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        for column in (
            "cancel_requested",
            "handbacks",
            "lost_runs",
            "log_id",
            "enqueued_at",
            "not_before",
            "lease_expires_at",
            "lease_owner",
        ):
            batch.drop_column(column)
