"""Learning from corrections: rule state, rule applications, tag rejections.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TRUE = sa.text("true")
ZERO = sa.text("0")


def upgrade() -> None:
    with op.batch_alter_table("learning_rules") as batch:
        batch.add_column(sa.Column("pattern_key", sa.String(64)))
        batch.add_column(sa.Column("description", sa.Text))
        batch.add_column(sa.Column("support", sa.Integer, nullable=False, server_default=ZERO))
        batch.add_column(sa.Column("observed", sa.Integer, nullable=False, server_default=ZERO))
        batch.add_column(sa.Column("examples", sa.JSON))
        batch.add_column(sa.Column("enabled", sa.Boolean, nullable=False, server_default=TRUE))
        batch.add_column(sa.Column("disabled_by", sa.String(16)))
        batch.add_column(sa.Column("disabled_reason", sa.Text))
        batch.add_column(
            sa.Column("success_count", sa.Integer, nullable=False, server_default=ZERO)
        )
        batch.add_column(
            sa.Column("failure_count", sa.Integer, nullable=False, server_default=ZERO)
        )
        batch.add_column(sa.Column("updated_at", UTCDateTime))
    op.create_index("ix_learning_rules_pattern_key", "learning_rules", ["pattern_key"], unique=True)

    op.create_table(
        "rule_applications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rule_id", sa.Integer, nullable=False),
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("before", sa.JSON, nullable=False),
        sa.Column("after", sa.JSON, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("applied_at", UTCDateTime, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("judged_at", UTCDateTime),
        sa.Column("judged_by", sa.Integer),
        sa.Column("undone_at", UTCDateTime),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["learning_rules.id"], name="fk_rule_applications_rule_id_learning_rules"
        ),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media.id"],
            name="fk_rule_applications_media_id_media",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "outcome IN ('pending', 'kept', 'reverted')", name=op.f("ck_rule_applications_outcome")
        ),
        sa.CheckConstraint(
            "target IN ('tags', 'genre', 'path')", name=op.f("ck_rule_applications_target")
        ),
    )
    op.create_index("ix_rule_applications_rule_id", "rule_applications", ["rule_id"])
    op.create_index(
        "ix_rule_applications_media_id_outcome", "rule_applications", ["media_id", "outcome"]
    )

    op.create_table(
        "media_tag_rejections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("tag_norm", sa.Text, nullable=False),
        sa.Column("feedback_id", sa.Integer),
        sa.Column("rejected_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media.id"],
            name="fk_media_tag_rejections_media_id_media",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "media_id", "tag_norm", name="uq_media_tag_rejections_media_id_tag_norm"
        ),
    )


def downgrade() -> None:
    op.drop_table("media_tag_rejections")
    op.drop_table("rule_applications")
    op.drop_index("ix_learning_rules_pattern_key", table_name="learning_rules")
    with op.batch_alter_table("learning_rules") as batch:
        for column in (
            "updated_at",
            "failure_count",
            "success_count",
            "disabled_reason",
            "disabled_by",
            "enabled",
            "examples",
            "observed",
            "support",
            "description",
            "pattern_key",
        ):
            batch.drop_column(column)
