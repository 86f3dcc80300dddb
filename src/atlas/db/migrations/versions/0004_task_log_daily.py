"""Task analytics: daily per-type summaries of task_logs and the fold watermark.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime, utcnow

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_log_daily",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("task_type", sa.String(64), nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("completed", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("cancelled", sa.Integer, nullable=False),
        sa.Column("unfinished", sa.Integer, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("retried_runs", sa.Integer, nullable=False),
        sa.Column("duration_count", sa.Integer, nullable=False),
        sa.Column("duration_sum_ms", sa.BigInteger, nullable=False),
        sa.Column("duration_min_ms", sa.Integer),
        sa.Column("duration_max_ms", sa.Integer),
        sa.Column("duration_histogram", sa.JSON, nullable=False),
        sa.Column("queued_runs", sa.Integer, nullable=False),
        sa.Column("queue_wait_sum_ms", sa.BigInteger, nullable=False),
        sa.Column("queue_wait_max_ms", sa.Integer),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("day", "task_type", name="pk_task_log_daily"),
    )
    fold_state = op.create_table(
        "task_log_fold_state",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("folded_through_id", sa.BigInteger, nullable=False),
        sa.Column("pending_ids", sa.JSON, nullable=False),
        sa.Column("cleaned_before", UTCDateTime),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_log_fold_state"),
        sa.CheckConstraint("id = 1", name=op.f("ck_task_log_fold_state_single_row")),
    )
    # Nothing folded yet: the first analysis folds every existing row.
    op.bulk_insert(
        fold_state,
        [{"id": 1, "folded_through_id": 0, "pending_ids": [], "updated_at": utcnow()}],
    )


def downgrade() -> None:
    op.drop_table("task_log_fold_state")
    op.drop_table("task_log_daily")
