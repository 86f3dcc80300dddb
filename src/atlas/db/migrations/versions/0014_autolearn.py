"""Autolearn: stored recommendations (and their verdicts), cycle runs, the learned schedule.

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime

revision = "0014"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autolearn_recommendations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="new"),
        sa.Column("insight_key", sa.String(200), nullable=False),
        sa.Column("insight", sa.JSON, nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("action", sa.JSON, nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("baseline", sa.Float),
        sa.Column("data_key", sa.String(64), nullable=False),
        sa.Column("safe", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("origin", sa.String(16), nullable=False, server_default="detector"),
        sa.Column("rank", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("claimed_by", sa.Integer),
        sa.Column("applied_at", UTCDateTime),
        sa.Column("applied_task_id", sa.Integer),
        sa.Column("applied_result", sa.JSON),
        sa.Column("dismissed_reason", sa.Text),
        sa.Column("superseded_reason", sa.Text),
        sa.Column("judged_at", UTCDateTime),
        sa.Column("verdict", sa.String(16)),
        sa.Column("after", sa.Float),
        sa.Column("verdict_detail", sa.Text),
        sa.CheckConstraint(
            "status IN ('new', 'applied', 'dismissed', 'superseded')",
            name=op.f("ck_autolearn_recommendations_status"),
        ),
        sa.CheckConstraint(
            "verdict IS NULL OR verdict IN ('kept', 'failed')",
            name=op.f("ck_autolearn_recommendations_verdict"),
        ),
    )
    op.create_index(
        "ix_autolearn_recommendations_status",
        "autolearn_recommendations",
        ["status"],
    )
    op.create_index(
        "ix_autolearn_recommendations_insight_key",
        "autolearn_recommendations",
        ["insight_key"],
    )
    op.create_table(
        "autolearn_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("task_id", sa.Integer),
        sa.Column("insight_keys", sa.JSON, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
    )
    op.create_table(
        "autolearn_schedule",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("quiet_hours", sa.JSON, nullable=False),
        sa.Column("jobs", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_autolearn_schedule_single_row")),
    )


def downgrade() -> None:
    op.drop_table("autolearn_schedule")
    op.drop_table("autolearn_runs")
    op.drop_index("ix_autolearn_recommendations_insight_key", "autolearn_recommendations")
    op.drop_index("ix_autolearn_recommendations_status", "autolearn_recommendations")
    op.drop_table("autolearn_recommendations")
