"""Foundation: media, sidecars, tags, transcripts, tasks and the seed's tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atlas.db.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")
FALSE = sa.text("false")


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text),
        sa.Column("origin", sa.String(16), nullable=False, server_default="file"),
        sa.Column("content_hash", sa.String(80)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("mtime", sa.Float),
        sa.Column("media_type", sa.String(16), nullable=False),
        sa.Column("duration_s", sa.Float),
        sa.Column("container", sa.String(64)),
        sa.Column("video_codec", sa.String(32)),
        sa.Column("audio_codec", sa.String(32)),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("bitrate", sa.BigInteger),
        sa.Column("has_video", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("has_audio", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("has_subtitles", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("streams", sa.JSON),
        sa.Column("container_tags", sa.JSON),
        sa.Column("title", sa.Text),
        sa.Column("artist", sa.Text),
        sa.Column("genre", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("year", sa.Integer),
        sa.Column("runtime_min", sa.Float),
        sa.Column("rating", sa.Float),
        sa.Column("external_id", sa.String(200)),
        sa.Column("missing", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("duplicate_of", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("probed_at", UTCDateTime),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["media.id"], name="fk_media_duplicate_of_media", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("path", name="uq_media_path"),
        sa.UniqueConstraint("external_id", name="uq_media_external_id"),
        sa.CheckConstraint(
            "media_type IN ('video', 'audio', 'image', 'other')", name=op.f("ck_media_media_type")
        ),
        sa.CheckConstraint("origin IN ('file', 'catalog')", name=op.f("ck_media_origin")),
        sa.CheckConstraint(
            "rating IS NULL OR (rating >= 0 AND rating <= 5)", name=op.f("ck_media_rating")
        ),
    )
    op.create_index("ix_media_content_hash", "media", ["content_hash"])
    op.create_index("ix_media_title_year", "media", ["title", "year"])

    op.create_table(
        "library_roots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("path", name="uq_library_roots_path"),
    )

    op.create_table(
        "media_sidecars",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("language", sa.String(16)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("mtime", sa.Float),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media.id"], name="fk_media_sidecars_media_id_media", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("path", name="uq_media_sidecars_path"),
        sa.CheckConstraint("kind IN ('subtitle', 'nfo')", name=op.f("ck_media_sidecars_kind")),
    )
    op.create_index("ix_media_sidecars_media_id", "media_sidecars", ["media_id"])

    op.create_table(
        "media_tags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("tag_norm", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, server_default="topic"),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False, server_default=sa.text("1.0")),
        sa.Column("explanation", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media.id"], name="fk_media_tags_media_id_media", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("media_id", "tag_norm", name="uq_media_tags_media_id_tag_norm"),
        sa.CheckConstraint("source IN ('auto', 'user', 'rule')", name=op.f("ck_media_tags_source")),
        sa.CheckConstraint(
            "kind IN ('genre', 'topic', 'keyword')", name=op.f("ck_media_tags_kind")
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_media_tags_confidence")
        ),
    )
    op.create_index("ix_media_tags_tag_norm", "media_tags", ["tag_norm"])

    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("segments", sa.JSON, nullable=False),
        sa.Column("language", sa.String(16)),
        sa.Column("language_probability", sa.Float),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("avg_logprob", sa.Float),
        sa.Column("audio_duration_s", sa.Float),
        sa.Column("real_time_factor", sa.Float),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media.id"], name="fk_transcripts_media_id_media", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("media_id", name="uq_transcripts_media_id"),
    )

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error_reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("parent_id", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("worker", sa.String(128)),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["tasks.id"], name="fk_tasks_parent_id_tasks", ondelete="SET NULL"
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'error', 'cancelled')",
            name=op.f("ck_tasks_status"),
        ),
    )
    op.create_index("ix_tasks_status_created_at", "tasks", ["status", "created_at"])

    op.create_table(
        "task_logs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("task_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("retries", sa.Integer, server_default=sa.text("0")),
        sa.Column("error_reason", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=NOW),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("queue_wait_ms", sa.Integer),
        sa.Column("worker", sa.String(128)),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'error', 'cancelled')",
            name=op.f("ck_task_logs_status"),
        ),
    )
    op.create_index("ix_task_logs_created_at", "task_logs", ["created_at"])
    op.create_index("ix_task_logs_task_type_created_at", "task_logs", ["task_type", "created_at"])
    op.create_index("ix_task_logs_task_id", "task_logs", ["task_id"])

    op.create_table(
        "user_feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.Integer, nullable=False),
        sa.Column("feedback_type", sa.String(32), nullable=False),
        sa.Column("original_value", sa.Text),
        sa.Column("corrected_value", sa.Text),
        sa.Column("confidence_score", sa.Float, server_default=sa.text("1.0")),
        sa.Column("timestamp", UTCDateTime, nullable=False, server_default=NOW),
        sa.Column("source", sa.String(32), server_default="user"),
        sa.CheckConstraint(
            "feedback_type IN ('tag_correction', 'file_move', 'rating', 'metadata_edit')",
            name=op.f("ck_user_feedback_feedback_type"),
        ),
        sa.CheckConstraint(
            "confidence_score >= 0 AND confidence_score <= 1",
            name=op.f("ck_user_feedback_confidence"),
        ),
    )
    op.create_index("ix_user_feedback_media_id", "user_feedback", ["media_id"])
    op.create_index("ix_user_feedback_timestamp", "user_feedback", ["timestamp"])

    op.create_table(
        "learning_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rule_type", sa.String(32), nullable=False),
        sa.Column("condition_text", sa.Text, nullable=False),
        sa.Column("action_text", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("created_from_feedback", sa.Boolean, server_default=sa.text("true")),
        sa.Column("usage_count", sa.Integer, server_default=sa.text("0")),
        sa.Column("success_rate", sa.Float, server_default=sa.text("0.0")),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=NOW),
    )


def downgrade() -> None:
    for table in (
        "learning_rules",
        "user_feedback",
        "task_logs",
        "tasks",
        "transcripts",
        "media_tags",
        "media_sidecars",
        "library_roots",
        "media",
    ):
        op.drop_table(table)
