"""The relational schema (SQLAlchemy Core), the source of truth of Atlas.

This module describes the schema as the latest migration leaves it; the
migrations in ``atlas/db/migrations/versions`` are how a database gets there.
A test checks that the two agree.

The seed's tables ``task_logs``, ``user_feedback`` and ``learning_rules`` keep the
seed's names and columns; columns are only ever added to them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from atlas.db.types import UTCDateTime, utcnow

__all__ = [
    "FEEDBACK_TYPES",
    "MEDIA_TYPES",
    "RECOMMENDATION_STATUSES",
    "RULE_OUTCOMES",
    "TAG_SOURCES",
    "TASK_STATUSES",
    "TRANSCRIPT_SOURCES",
    "autolearn_recommendations",
    "autolearn_runs",
    "autolearn_schedule",
    "clusters",
    "learning_rules",
    "library_roots",
    "media",
    "media_clusters",
    "media_embeddings",
    "media_sidecars",
    "media_tag_inputs",
    "media_tag_rejections",
    "media_tags",
    "metadata",
    "rule_applications",
    "search_changes",
    "tagger_models",
    "tagger_tuning",
    "task_log_daily",
    "task_log_fold_state",
    "task_logs",
    "tasks",
    "transcripts",
    "user_feedback",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

MEDIA_TYPES = ("video", "audio", "image", "other")
TAG_SOURCES = ("auto", "user", "rule")
TASK_STATUSES = ("queued", "running", "completed", "error", "cancelled")
FEEDBACK_TYPES = ("tag_correction", "file_move", "rating", "metadata_edit")
TRANSCRIPT_SOURCES = ("whisper", "sidecar", "embedded")
RULE_OUTCOMES = ("pending", "kept", "reverted")
RECOMMENDATION_STATUSES = ("new", "applied", "dismissed", "superseded")


# The seed's tables default their times in the database too.
_NOW = text("CURRENT_TIMESTAMP")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# --- media -----------------------------------------------------------------

media = Table(
    "media",
    metadata,
    Column("id", Integer, primary_key=True),
    # NULL for catalogue records that have no file.
    Column("path", Text, unique=True),
    Column("origin", String(16), nullable=False, server_default="file"),
    # Sampled BLAKE2b fingerprint; see atlas.media.fingerprint.
    Column("content_hash", String(80), index=True),
    Column("size_bytes", BigInteger),
    Column("mtime", Float),
    Column("media_type", String(16), nullable=False),
    Column("duration_s", Float),
    Column("container", String(64)),
    Column("video_codec", String(32)),
    Column("audio_codec", String(32)),
    Column("width", Integer),
    Column("height", Integer),
    Column("bitrate", BigInteger),
    Column("has_video", Boolean, nullable=False, server_default=text("false")),
    Column("has_audio", Boolean, nullable=False, server_default=text("false")),
    Column("has_subtitles", Boolean, nullable=False, server_default=text("false")),
    Column("streams", JSON),
    Column("container_tags", JSON),
    Column("title", Text),
    Column("artist", Text),
    Column("genre", Text),
    Column("description", Text),
    Column("year", Integer),
    Column("runtime_min", Float),
    Column("rating", Float),
    Column("external_id", String(200), unique=True),
    # Added by 0008: the content words of title, description and transcript
    # (space-separated) and a hash of the texts they were made from; see
    # atlas.media.words.
    Column("words", Text),
    Column("words_key", String(32)),
    # The file is gone from its path (kept: user data hangs off the media id).
    Column("missing", Boolean, nullable=False, server_default=text("false")),
    # Same content as another media item at another path.
    Column("duplicate_of", Integer, ForeignKey("media.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    Column("probed_at", UTCDateTime),
    CheckConstraint(_in("media_type", MEDIA_TYPES), name="media_type"),
    CheckConstraint(_in("origin", ("file", "catalog")), name="origin"),
    CheckConstraint("rating IS NULL OR (rating >= 0 AND rating <= 5)", name="rating"),
)
Index("ix_media_title_year", media.c.title, media.c.year)

# Folders the user ingested; files may only be moved within them.
library_roots = Table(
    "library_roots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", Text, nullable=False, unique=True),
    Column("added_at", UTCDateTime, nullable=False, default=utcnow),
)

media_sidecars = Table(
    "media_sidecars",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("path", Text, nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("format", String(16), nullable=False),
    Column("language", String(16)),
    Column("size_bytes", BigInteger),
    Column("mtime", Float),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    CheckConstraint(_in("kind", ("subtitle", "nfo")), name="kind"),
)

media_tags = Table(
    "media_tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
    # As first spelt; shown to the user.
    Column("tag", Text, nullable=False),
    # Normalised (NFKC, case-folded, single spaces); compared and unique.
    Column("tag_norm", Text, nullable=False),
    Column("kind", String(16), nullable=False, server_default="topic"),
    Column("source", String(8), nullable=False),
    Column("confidence", Float, nullable=False, server_default=text("1.0")),
    Column("explanation", Text),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    UniqueConstraint("media_id", "tag_norm"),
    CheckConstraint(_in("source", TAG_SOURCES), name="source"),
    CheckConstraint(_in("kind", ("genre", "topic", "keyword")), name="kind"),
    CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
)
Index("ix_media_tags_tag_norm", media_tags.c.tag_norm)

# What the automatic tagger read of each item (added by 0006): the vector of its
# text without tags (the tagger's query, and the training data of learned tag
# profiles), and the hash of everything its last tagging depended on, so that
# tagging again with unchanged input does nothing; and (0007) the tags its learned
# cut-offs held back.
media_tag_inputs = Table(
    "media_tag_inputs",
    metadata,
    Column("media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), primary_key=True),
    # The embedding model of the vector, e.g. 'sentence-transformers:all-MiniLM-L6-v2'.
    Column("model", String(300), nullable=False),
    # SHA-256 of the model and the text the vector was made from.
    Column("text_hash", String(64), nullable=False),
    Column("dimension", Integer, nullable=False),
    # float32, little-endian.
    Column("vector", LargeBinary, nullable=False),
    # SHA-256 of text, model, vocabulary and tagger settings at the last tagging;
    # NULL: the item was never tagged (only its vector is known).
    Column("input_hash", String(64)),
    # JSON list of the tags a learned cut-off held back at the last tagging
    # ({tag, norm, kind, confidence}): a full review of the item judges them too.
    Column("withheld", Text),
    Column("tagged_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    CheckConstraint("dimension > 0", name="dimension"),
)

# The tagger's text model fine-tuned on the library's confirmed tags (added by
# 0009; `atlas media-tags train`): the top layers of the embedding model and a
# head with one output per tag. Only the newest row per embedding model is kept.
tagger_models = Table(
    "tagger_models",
    metadata,
    Column("id", Integer, primary_key=True),
    # The embedding model whose lower layers it builds on.
    Column("model", String(300), nullable=False),
    # JSON list of {tag, norm, kind, positives}, one per output of the head.
    Column("tags", JSON, nullable=False),
    # How it was trained: {layers, epochs, items, max_length, loss, seconds}.
    Column("training", JSON, nullable=False),
    # The trained weights (safetensors).
    Column("weights", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)
Index("ix_tagger_models_model", tagger_models.c.model)

# What the tagger learned about this library from its confirmed items (added by
# 0011; `atlas media-tags tuning`): source weights, threshold and genre floor
# chosen by cross-validation, or the shipped ones and why. The newest row per
# embedding model is the one in use; only it is kept.
tagger_tuning = Table(
    "tagger_tuning",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model", String(300), nullable=False),
    # "learned": the weights below are in use; "prior": the shipped ones are.
    Column("status", String(20), nullable=False),
    # Confirmed items with genres it learned from, and their genres.
    Column("items", Integer, nullable=False),
    Column("genres", Integer, nullable=False),
    # {prior, zero_shot, neighbours, profiles, tuned, keyphrases, llm}.
    Column("weights", JSON, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("genre_floor", Float, nullable=False),
    # Cross-validated genre micro-F1: {prior, learned, sources: {name: f1}, folds}.
    Column("scores", JSON, nullable=False),
    # Why the shipped constants stayed (status "prior"), or what was learned.
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)
Index("ix_tagger_tuning_model", tagger_tuning.c.model)

transcripts = Table(
    "transcripts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    Column("text", Text, nullable=False),
    Column("segments", JSON, nullable=False),
    Column("language", String(16)),
    Column("language_probability", Float),
    # 'whisper', 'sidecar' or 'embedded'.
    Column("source", String(16), nullable=False),
    Column("model", Text),
    Column("avg_logprob", Float),
    Column("audio_duration_s", Float),
    Column("real_time_factor", Float),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    # Added by 0003: how the transcript was made, for analytics and staleness.
    # Seconds spent decoding and transcribing (model loading excluded).
    Column("wall_time_s", Float),
    Column("device", String(16)),
    Column("compute_type", String(32)),
    # The media's content fingerprint the transcript was made from; a changed
    # file has a stale transcript.
    Column("content_hash", String(80)),
    # Which subtitle file or stream, or the model's path.
    Column("source_detail", Text),
    CheckConstraint(_in("source", TRANSCRIPT_SOURCES), name="source"),
)

# --- embeddings --------------------------------------------------------------

# One row per media item and embedding model, written only after the vector
# store accepted the vector: the record of what the vector store holds.
media_embeddings = Table(
    "media_embeddings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
    # The provider and model, e.g. 'sentence-transformers:all-MiniLM-L6-v2'.
    Column("model", String(300), nullable=False),
    Column("dimension", Integer, nullable=False),
    # The vector store collection that holds the vector.
    Column("collection", String(128), nullable=False),
    # SHA-256 of the embedding document; a new hash means a new vector is due.
    Column("doc_hash", String(64), nullable=False),
    Column("doc_chars", Integer, nullable=False),
    Column("embedded_at", UTCDateTime, nullable=False, default=utcnow),
    # The vector itself (float32, little-endian), so that every process reads the
    # vectors as they are now (see atlas.embeddings.live); NULL for vectors recorded
    # before migration 0016 until they are embedded again.
    Column("vector", LargeBinary, nullable=True),
    UniqueConstraint("media_id", "model"),
    CheckConstraint("dimension > 0", name="dimension"),
)
Index("ix_media_embeddings_model", media_embeddings.c.model)

# The latest clustering of the library, per embedding model.
clusters = Table(
    "clusters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model", String(300), nullable=False),
    # 0..k-1 within one clustering.
    Column("cluster", Integer, nullable=False),
    Column("name", Text, nullable=False),
    # The most distinctive tags, best first.
    Column("tags", JSON, nullable=False),
    Column("size", Integer, nullable=False),
    # e.g. 'kmeans k=12 (auto, silhouette 0.08)'.
    Column("method", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("model", "cluster"),
)

media_clusters = Table(
    "media_clusters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
    Column("model", String(300), nullable=False),
    Column("cluster", Integer, nullable=False),
    UniqueConstraint("media_id", "model"),
)
Index("ix_media_clusters_model_cluster", media_clusters.c.model, media_clusters.c.cluster)

# --- tasks -----------------------------------------------------------------

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("result", JSON),
    Column("error_reason", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("parent_id", Integer, ForeignKey("tasks.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("worker", String(128)),
    # Added by 0010: who holds the task (a process: host, pid, token) and until
    # when; renewed by a heartbeat while the process lives. See atlas.tasks.leases.
    Column("lease_owner", String(160), index=True),
    Column("lease_expires_at", UTCDateTime, index=True),
    # A retry waits until then (back-off), also when it is sent again.
    Column("not_before", UTCDateTime),
    # When the task's message was last sent to the queue.
    Column("enqueued_at", UTCDateTime),
    # The task_logs row of the current run.
    Column("log_id", Integer),
    # Runs whose process died (lease expired), and runs handed back on a stop.
    Column("lost_runs", Integer, nullable=False, server_default=text("0")),
    Column("handbacks", Integer, nullable=False, server_default=text("0")),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint(_in("status", TASK_STATUSES), name="status"),
)
Index("ix_tasks_status_created_at", tasks.c.status, tasks.c.created_at)

# The seed's table. One row per run of a task, written by the dispatcher:
# inserted as 'running' when the run starts, finished in place.
task_logs = Table(
    "task_logs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", Integer, nullable=False),
    Column("task_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("duration_ms", Integer),
    Column("retries", Integer, server_default=text("0")),
    Column("error_reason", Text),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow, server_default=_NOW),
    # Added by Atlas.
    Column("finished_at", UTCDateTime),
    Column("queue_wait_ms", Integer),
    Column("worker", String(128)),
    CheckConstraint(_in("status", TASK_STATUSES), name="status"),
)
Index("ix_task_logs_created_at", task_logs.c.created_at)
Index("ix_task_logs_task_type_created_at", task_logs.c.task_type, task_logs.c.created_at)
Index("ix_task_logs_task_id", task_logs.c.task_id)

# Daily per-type summaries of task_logs, kept by atlas.analytics (see
# atlas.analytics.fold): trends read these, and they outlive the raw rows that
# cleanup deletes. Durations count completed and failed runs only.
task_log_daily = Table(
    "task_log_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("task_type", String(64), primary_key=True),
    # Every folded run: completed + failed + cancelled + unfinished.
    Column("runs", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("cancelled", Integer, nullable=False),
    # Still 'running' when it was past analytics.stale_after_hours: abandoned.
    Column("unfinished", Integer, nullable=False),
    Column("retries", Integer, nullable=False),
    Column("retried_runs", Integer, nullable=False),
    Column("duration_count", Integer, nullable=False),
    Column("duration_sum_ms", BigInteger, nullable=False),
    Column("duration_min_ms", Integer),
    Column("duration_max_ms", Integer),
    # Counts per bucket ([bucket 0, bucket 1, ...]) on the log scale of
    # atlas.analytics.histogram.
    Column("duration_histogram", JSON, nullable=False),
    Column("queued_runs", Integer, nullable=False),
    Column("queue_wait_sum_ms", BigInteger, nullable=False),
    Column("queue_wait_max_ms", Integer),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

# One row: how far task_logs has been folded into task_log_daily.
task_log_fold_state = Table(
    "task_log_fold_state",
    metadata,
    Column("id", Integer, primary_key=True),
    # Every task_logs row with an id up to this one is folded, except pending_ids.
    Column("folded_through_id", BigInteger, nullable=False),
    # Rows at or below folded_through_id that were still running when folded past.
    Column("pending_ids", JSON, nullable=False),
    # Cleanup deleted the raw rows created before this time.
    Column("cleaned_before", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    CheckConstraint("id = 1", name="single_row"),
)

# --- learning --------------------------------------------------------------

# The seed's table. Never deleted by cleanup; outlives the media it is about.
user_feedback = Table(
    "user_feedback",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("media_id", Integer, nullable=False),
    Column("feedback_type", String(32), nullable=False),
    Column("original_value", Text),
    Column("corrected_value", Text),
    Column("confidence_score", Float, server_default=text("1.0")),
    Column("timestamp", UTCDateTime, nullable=False, default=utcnow, server_default=_NOW),
    Column("source", String(32), server_default="user"),
    CheckConstraint(_in("feedback_type", FEEDBACK_TYPES), name="feedback_type"),
    CheckConstraint("confidence_score >= 0 AND confidence_score <= 1", name="confidence"),
)
Index("ix_user_feedback_media_id", user_feedback.c.media_id)
Index("ix_user_feedback_timestamp", user_feedback.c.timestamp)

# The seed's table.
learning_rules = Table(
    "learning_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("rule_type", String(32), nullable=False),
    Column("condition_text", Text, nullable=False),
    Column("action_text", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("created_from_feedback", Boolean, server_default=text("true")),
    Column("usage_count", Integer, server_default=text("0")),
    Column("success_rate", Float, server_default=text("0.0")),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow, server_default=_NOW),
    # Added by Atlas (migration 0005). condition_text/action_text hold JSON that
    # atlas.feedback.rules evaluates; pattern_key identifies the mined pattern so
    # that mining again updates the rule instead of adding a twin.
    Column("pattern_key", String(64)),
    Column("description", Text),
    Column("support", Integer, nullable=False, server_default=text("0")),
    Column("observed", Integer, nullable=False, server_default=text("0")),
    Column("examples", JSON),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    # Who disabled it: 'user', 'judge' (success rate too low) or 'evidence'
    # (the feedback no longer supports it; re-enabled when it does again).
    Column("disabled_by", String(16)),
    Column("disabled_reason", Text),
    Column("success_count", Integer, nullable=False, server_default=text("0")),
    Column("failure_count", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", UTCDateTime),
)
Index("ix_learning_rules_pattern_key", learning_rules.c.pattern_key, unique=True)

# Every time a rule changed a media item: what it was before and after, so it can
# be listed, undone, and judged by the user's next edit of that item.
rule_applications = Table(
    "rule_applications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("rule_id", Integer, ForeignKey("learning_rules.id"), nullable=False, index=True),
    Column("media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
    # 'tags', 'genre' or 'path'.
    Column("target", String(16), nullable=False),
    Column("before", JSON, nullable=False),
    Column("after", JSON, nullable=False),
    # 'tagger' (new predictions) or 'loop' (run-feedback-loop on stored items).
    Column("via", String(16), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False, default=utcnow),
    Column("outcome", String(16), nullable=False, server_default="pending"),
    Column("judged_at", UTCDateTime),
    # The user_feedback row whose edit judged it (NULL for an undo).
    Column("judged_by", Integer),
    Column("undone_at", UTCDateTime),
    CheckConstraint(_in("outcome", RULE_OUTCOMES), name="outcome"),
    CheckConstraint(_in("target", ("tags", "genre", "path")), name="target"),
)
Index(
    "ix_rule_applications_media_id_outcome",
    rule_applications.c.media_id,
    rule_applications.c.outcome,
)

# Tags the user removed from an item: the tagger and the rules never add them back.
media_tag_rejections = Table(
    "media_tag_rejections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
    Column("tag", Text, nullable=False),
    Column("tag_norm", Text, nullable=False),
    Column("feedback_id", Integer),
    Column("rejected_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("media_id", "tag_norm"),
)


# --- autolearn (added by 0014) ---------------------------------------------------

# What atlas.autolearn advises, the action it would take (exactly), the metric it
# promises to move, and once applied, whether it did.
autolearn_recommendations = Table(
    "autolearn_recommendations",
    metadata,
    Column("id", Integer, primary_key=True),
    # The action kind, e.g. 'embed-missing' (see atlas.autolearn.actions).
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False, server_default="new"),
    # The insight it came from: its stable key and the insight as shown.
    Column("insight_key", String(200), nullable=False, index=True),
    Column("insight", JSON, nullable=False),
    Column("statement", Text, nullable=False),
    # {kind, params, describe}: what apply does, as --dry-run shows it.
    Column("action", JSON, nullable=False),
    # The metric it promises to lower, its value when made and after judging.
    Column("metric", String(200), nullable=False),
    Column("baseline", Float),
    # SHA-256 of the data the action acts on; apply refuses when it changed.
    Column("data_key", String(64), nullable=False),
    # May be applied by the automatic cycle (queueing missing work, folding).
    Column("safe", Boolean, nullable=False, server_default=text("false")),
    # 'detector' or 'llm'.
    Column("origin", String(16), nullable=False, server_default="detector"),
    # The order an LLM plan put it in.
    Column("rank", Integer),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    # The apply task that holds it: two applies at once apply it once.
    Column("claimed_by", Integer),
    Column("applied_at", UTCDateTime),
    Column("applied_task_id", Integer),
    Column("applied_result", JSON),
    Column("dismissed_reason", Text),
    Column("superseded_reason", Text),
    Column("judged_at", UTCDateTime),
    # 'kept' (the metric moved as promised) or 'failed'.
    Column("verdict", String(16)),
    Column("after", Float),
    Column("verdict_detail", Text),
    CheckConstraint(_in("status", RECOMMENDATION_STATUSES), name="status"),
    CheckConstraint("verdict IS NULL OR verdict IN ('kept', 'failed')", name="verdict"),
)
Index("ix_autolearn_recommendations_status", autolearn_recommendations.c.status)

# One row per autolearn cycle: what it found, so the next can say what changed.
autolearn_runs = Table(
    "autolearn_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", UTCDateTime, nullable=False, default=utcnow),
    Column("finished_at", UTCDateTime),
    Column("task_id", Integer),
    Column("insight_keys", JSON, nullable=False),
    Column("report", JSON, nullable=False),
)

# The learned schedule (one row): quiet hours, the periodic jobs placed in them,
# and the activity it was learned from.
autolearn_schedule = Table(
    "autolearn_schedule",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("quiet_hours", JSON, nullable=False),
    Column("jobs", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    CheckConstraint("id = 1", name="single_row"),
)

# Which media items' searchable text or stored vectors changed (added by 0015, the
# vectors by 0016): triggers on media, media_tags, transcripts and media_embeddings
# append the media id of every insert, update and delete; the lexical index and the
# in-memory vectors re-read only the items logged after the last id they read
# (atlas.embeddings.changes). No foreign key: a deleted item's id stays.
search_changes = Table(
    "search_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("media_id", Integer, nullable=False),
)
