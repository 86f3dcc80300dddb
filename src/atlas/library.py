"""One entry object for every face of Atlas: ``Library``.

The CLI and the HTTP API call the same service functions through it, so a
correction made in a web page writes exactly the ``user_feedback`` rows that
``atlas track-tag-edits`` writes. It owns the settings, the database engine,
the dispatcher and (opened on first use) the vector store; each method is one
service call, in the domain's words, and raises the services' ``AtlasError``s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from atlas.analytics import (
    BottleneckReport,
    CleanupReport,
    MetricsSummary,
    TrendReport,
    find_bottlenecks,
    run_cleanup,
    summarise_task_metrics,
    task_trends,
)
from atlas.app import Atlas, open_atlas
from atlas.autolearn import (
    CYCLE_TASK,
    ApplyResult,
    InsightReport,
    PlanReport,
    Recommendation,
    Schedule,
    SyncReport,
    apply_recommendation,
    blocked_kinds,
    clear_schedule,
    collect_insights,
    dismiss_recommendation,
    learn_schedule,
    list_recommendations,
    plan_with_llm,
    run_autolearn,
    show_schedule,
    start_apply,
    sync_recommendations,
)
from atlas.autolearn.recommendations import get_recommendation
from atlas.config import Settings
from atlas.db import database_errors
from atlas.embeddings import (
    ClusterReport,
    EmbedReport,
    QueryVectors,
    SearchResult,
    VectorStore,
    cluster_library,
    embed_media,
    get_store,
    search_media,
    similar_media,
)
from atlas.embeddings.lexical_sync import get_lexical_index
from atlas.embeddings.live import live_vectors
from atlas.embeddings.providers import get_provider
from atlas.errors import AtlasError, InvalidInput, NotFound
from atlas.feedback import (
    Application,
    EditReport,
    MoveReport,
    Rule,
    RuleDetail,
    UndoReport,
    edit_metadata,
    feedback_loop,
    list_applications,
    list_rules,
    loop_mode,
    move_media,
    rule_detail,
    set_rule_enabled,
    track_tag_edits,
    undo_application,
)
from atlas.feedback.history import FeedbackRow, list_feedback
from atlas.media import (
    CatalogReport,
    IngestReport,
    MediaDetail,
    MediaPage,
    MediaRecord,
    Transcript,
    cluster_names,
    get_media,
    import_catalog,
    ingest_paths,
    library_root_paths,
    list_media,
    media_detail,
    media_transcript,
)
from atlas.paths import user_path
from atlas.tagging import (
    LibraryTuning,
    MediaTags,
    RetagReport,
    TagEdit,
    add_media_tags,
    current_tuning,
    list_media_tags,
    load_vocabulary,
    remove_media_tags,
    retag_media,
    train_media_tagger,
    tuning_of_library,
)
from atlas.tasks import Dispatcher, TaskOutcome
from atlas.tasks.dispatcher import RecoveryReport
from atlas.tasks.history import TaskDetail, TaskRow, list_tasks, task_detail
from atlas.tasks.recovery import Orphan
from atlas.transcription import (
    TranscribeReport,
    TranscriptionAnalytics,
    transcribe_library,
    transcription_analytics,
)

__all__ = ["ENQUEUEABLE", "Library", "open_library"]

#: The task types a face may enqueue directly, with the parameters each takes.
ENQUEUEABLE: dict[str, tuple[str, ...]] = {
    "ingest": ("path", "force", "process", "root"),
    "transcribe": ("media_ids", "force", "chain"),
    "tag": ("media_ids", "force", "chain"),
    "embed": ("media_ids", "force", "chain"),
    "cluster": ("k", "auto"),
}


class Library:
    """Settings, database, dispatcher and vector store, with the service calls on top."""

    def __init__(self, atlas: Atlas) -> None:
        self.atlas = atlas
        self._store: VectorStore | None = None
        self._vocabulary_kinds: dict[str, str] | None = None
        #: Vectors of recent search texts: a repeated query skips the model.
        self.query_vectors = QueryVectors()
        #: Searches read vectors from an in-memory copy kept current from the change log
        #: (:mod:`atlas.embeddings.live`), not the store: for a process that keeps
        #: running and must see what other processes embed (``atlas serve`` sets it).
        self.live_vectors = False

    @property
    def settings(self) -> Settings:
        return self.atlas.settings

    @property
    def engine(self) -> Engine:
        return self.atlas.engine

    @property
    def dispatcher(self) -> Dispatcher:
        return self.atlas.dispatcher

    @property
    def store(self) -> VectorStore:
        """The vector store (Chroma), opened on first use."""
        if self._store is None:
            self._store = get_store(self.settings)
        return self._store

    def close(self) -> None:
        self.atlas.close()

    # -- media ------------------------------------------------------------------

    def media_page(self, **filters: Any) -> MediaPage:
        """A page of media: see :func:`atlas.media.list_media` for the filters."""
        return list_media(self.engine, **filters)

    def media(self, media_id: int) -> MediaDetail:
        return media_detail(self.engine, media_id)

    def transcript(self, media_id: int) -> Transcript:
        return media_transcript(self.engine, media_id)

    def tags(self, target: int | str) -> MediaTags:
        """An item's tags (by id, or the path of an ingested file) with source,
        confidence and the explanation of each."""
        return list_media_tags(self.engine, str(target))

    def clusters(self) -> dict[int, str]:
        return cluster_names(self.engine)

    def roots(self) -> list[str]:
        return library_root_paths(self.engine)

    def media_file(self, media_id: int) -> Path:
        """The file of an item, if it is inside a library root (symlinks followed).

        Raises ``NotFound`` (no such item, a catalogue record, a missing file) or
        ``InvalidInput`` (the file lies outside every folder given to ingest).
        """
        return self.file_of(get_media(self.engine, media_id))

    def file_of(self, record: MediaRecord) -> Path:
        """The file of an item already read; see :meth:`media_file`."""
        media_id = record.id
        if record.path is None:
            raise NotFound(f"media {media_id} is a catalogue record without a file")
        recorded = user_path(record.path, what=f"recorded path of media {media_id}")
        roots = [user_path(root, resolve=True) for root in self.roots()]
        real = recorded.resolve()
        for seen in (recorded.parent.resolve() / recorded.name, real):
            if not any(seen.is_relative_to(root) for root in roots):
                raise InvalidInput(
                    f"the file of media {media_id} is outside the library folders; "
                    "Atlas serves only files inside the folders given to ingest"
                )
        if not real.is_file():
            raise NotFound(f"the file of media {media_id} is missing")
        return real

    # -- processing: ingest, transcribe, tag, embed, cluster -----------------------
    # Each runs as dispatcher tasks (in this process, or by workers with a queue)
    # and reports per item; the options are the service's, in its words.

    def ingest(self, paths: Sequence[Path | str], **options: Any) -> IngestReport:
        """Probe, fingerprint and record files and folders; see ``ingest_paths``."""
        return ingest_paths(self.dispatcher, paths, **options)

    def import_catalog(self, source: Path | str, **options: Any) -> CatalogReport:
        """Records from a CSV, JSON Lines file or ``.nfo`` folder; see ``import_catalog``."""
        return import_catalog(self.dispatcher, source, **options)

    def transcribe(self, **options: Any) -> TranscribeReport:
        """Speech to text, subtitles first; see ``transcribe_library``."""
        return transcribe_library(self.dispatcher, **options)

    def transcription_analytics(self) -> TranscriptionAnalytics:
        return transcription_analytics(self.engine)

    def retag(self, **options: Any) -> RetagReport:
        """Run the automatic tagger; see ``retag_media``."""
        return retag_media(self.dispatcher, **options)

    def train_tagger(self, **options: Any) -> TaskOutcome:
        """Fine-tune the tagger's text model on the confirmed tags (a task; minutes)."""
        return train_media_tagger(self.dispatcher, **options)

    def tuning(self, *, refresh: bool = False) -> LibraryTuning | None:
        """What the tagger learned on this library (learning again first with ``refresh``).

        Raises ``AtlasError`` with the task's reason when learning again failed.
        """
        outcome = tuning_of_library(self.dispatcher, refresh=refresh)
        if outcome is not None and not outcome.ok:
            raise AtlasError(
                f"learning the tagger's values failed: {outcome.error or outcome.status}"
            )
        return current_tuning(self.settings, self.engine)

    def embed(self, **options: Any) -> EmbedReport:
        """Embed new or changed items into the vector store; see ``embed_media``."""
        return embed_media(self.dispatcher, **options)

    def cluster(self, *, k: int | None = None, auto: bool = False) -> ClusterReport:
        """Group the library by meaning and name each cluster by its tags."""
        return cluster_library(self.dispatcher, k=k, auto=auto)

    # -- search -----------------------------------------------------------------

    def warm_up(self) -> list[str]:
        """Load what the first search would: the word index, the in-memory vectors
        (with ``live_vectors``) and the embedding model. Returns what could not be
        loaded, one line each; a search that needs it says so again."""
        provider = get_provider(self.settings)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("word index", lambda: get_lexical_index(self.engine)),
            ("embedding model", lambda: provider.embed(["warm up"])),
        ]
        if self.live_vectors:
            model_id = provider.model_id
            steps.append(("vectors", lambda: live_vectors(self.settings, self.engine, model_id)))
        problems = []
        for name, step in steps:
            try:
                step()
            except AtlasError as exc:
                problems.append(f"{name}: {exc}")
        return problems

    def search(self, query: str, **options: Any) -> SearchResult:
        """Text search (``mode``: vector, lexical or hybrid); see ``search_media``."""
        return search_media(
            self.settings,
            self.engine,
            query,
            embed_query=self.query_vectors.embed,
            live=self.live_vectors,
            **options,
        )

    def similar(self, media_id: int, **options: Any) -> SearchResult:
        """The items most like one item, by its stored vector; see ``similar_media``."""
        return similar_media(
            self.settings, self.engine, media_id, live=self.live_vectors, **options
        )

    # -- feedback ---------------------------------------------------------------

    def correct(
        self,
        media_id: int,
        *,
        tags: str | Sequence[str] | None = None,
        genre: str | None = None,
        rating: float | None = None,
        confidence: float = 1.0,
    ) -> EditReport:
        """The user's corrected tag set, genre or rating (``track-tag-edits``)."""
        return track_tag_edits(
            self.engine,
            self.settings.feedback,
            media_id,
            tags=tags,
            genre=genre,
            rating=rating,
            confidence=confidence,
            vocabulary_kinds=self.vocabulary_kinds(),
        )

    def edit(self, media_id: int, **values: Any) -> EditReport:
        """Title, genre, description, artist or year (``media edit``); recorded as feedback."""
        return edit_metadata(self.engine, self.settings.feedback, media_id, **values)

    def move(self, media_id: int, destination: str) -> MoveReport:
        """Move an item's file inside the library (``media move``); recorded as feedback."""
        return move_media(self.engine, self.settings.feedback, media_id, destination)

    def add_tags(
        self, target: int | str, tags: Sequence[str], *, kind: str | None = None
    ) -> TagEdit:
        """Add tags as the user's; with no ``kind``, the vocabulary's or the library's."""
        return add_media_tags(
            self.engine,
            self.settings.feedback,
            str(target),
            tags,
            kind=kind,
            vocabulary_kinds=self.vocabulary_kinds(),
        )

    def vocabulary_kinds(self) -> dict[str, str]:
        """The tag vocabulary's kinds by normalised name (a genre stays a genre)."""
        if self._vocabulary_kinds is None:
            self._vocabulary_kinds = dict(load_vocabulary(self.settings.tagging).kinds())
        return self._vocabulary_kinds

    def remove_tags(self, target: int | str, tags: Sequence[str]) -> TagEdit:
        return remove_media_tags(self.engine, self.settings.feedback, str(target), tags)

    def feedback(self, **filters: Any) -> list[FeedbackRow]:
        return list_feedback(self.engine, **filters)

    # -- rules ------------------------------------------------------------------

    def rules(self) -> list[Rule]:
        return list_rules(self.engine)

    def rule(self, rule_id: int) -> RuleDetail:
        return rule_detail(self.engine, rule_id)

    def set_rule(self, rule_id: int, enabled: bool, *, reason: str | None = None) -> Rule:
        return set_rule_enabled(self.engine, rule_id, enabled, reason=reason)

    def applications(self, **filters: Any) -> list[Application]:
        return list_applications(self.engine, **filters)

    def undo(self, application_id: int) -> UndoReport:
        return undo_application(self.engine, self.settings.feedback, application_id)

    def feedback_loop(self, **options: Any) -> dict[str, Any]:
        """Mine corrections, update rules and apply them, as a task; waits for its report."""
        return feedback_loop(self.dispatcher, **options)

    def start_feedback_loop(
        self,
        *,
        analyze_only: bool = False,
        apply_rules: bool = False,
        dry_run: bool = False,
        min_frequency: int | None = None,
        move_files: bool = False,
    ) -> TaskOutcome:
        """Start the feedback loop as a task and return at once (its id in the outcome)."""
        mode = loop_mode(
            analyze_only=analyze_only, apply_rules=apply_rules, min_frequency=min_frequency
        )
        return self.dispatcher.start(
            "feedback-loop",
            {
                "mode": mode,
                "dry_run": dry_run,
                "min_frequency": min_frequency,
                "move_files": move_files,
            },
        )

    # -- analytics --------------------------------------------------------------

    def metrics(self, *, hours: int = 24, task_type: str | None = None) -> MetricsSummary:
        return summarise_task_metrics(
            self.engine, self.settings.analytics, hours=hours, task_type=task_type
        )

    def trends(self, *, days: int = 7, task_type: str | None = None) -> TrendReport:
        return task_trends(self.engine, self.settings.analytics, days=days, task_type=task_type)

    def bottlenecks(
        self, *, hours: int = 24, threshold_ms: int | None = None, task_type: str | None = None
    ) -> BottleneckReport:
        return find_bottlenecks(
            self.engine, hours=hours, threshold_ms=threshold_ms, task_type=task_type
        )

    def cleanup(
        self,
        *,
        keep_days: int | None = None,
        dry_run: bool = False,
        wait_timeout_s: float | None = None,
    ) -> CleanupReport:
        """Delete task_logs rows older than the retention (summaries are kept)."""
        return run_cleanup(
            self.dispatcher, keep_days=keep_days, dry_run=dry_run, wait_timeout_s=wait_timeout_s
        )

    # -- autolearn --------------------------------------------------------------

    def insights(self, *, kind: str | None = None, days: int = 7) -> InsightReport:
        """What the data supports noticing, each with its evidence."""
        return collect_insights(self.settings, self.engine, kind=kind, days=days)

    def recommend(self) -> tuple[SyncReport, list[Recommendation]]:
        """Make recommendations from the current insights; the open ones after it."""
        report = self.insights()
        sync = sync_recommendations(
            self.settings, self.engine, report.insights, coverage=report.coverage
        )
        return sync, self.recommendations()

    def recommendations(
        self, *, statuses: Sequence[str] = ("new",), limit: int = 200
    ) -> list[Recommendation]:
        return list_recommendations(self.engine, statuses=statuses, limit=limit)

    def blocked_recommendations(self) -> dict[str, str]:
        """Kinds of recommendation no longer proposed, with the reason of each."""
        with database_errors(self.engine), self.engine.connect() as connection:
            return blocked_kinds(connection)

    def recommendation(self, rec_id: int) -> Recommendation:
        with database_errors(self.engine), self.engine.connect() as connection:
            return get_recommendation(connection, rec_id)

    def apply_recommendation(self, rec_id: int, *, dry_run: bool = False) -> ApplyResult:
        """Apply one recommendation exactly as its plan says (waits for the task)."""
        return apply_recommendation(self.dispatcher, rec_id, dry_run=dry_run)

    def start_apply_recommendation(self, rec_id: int) -> TaskOutcome:
        """Start applying one recommendation as a task and return at once."""
        return start_apply(self.dispatcher, rec_id)

    def dismiss_recommendation(self, rec_id: int, reason: str | None = None) -> Recommendation:
        return dismiss_recommendation(self.engine, rec_id, reason)

    def plan(self, *, media_ids: Sequence[int] = ()) -> PlanReport:
        """Ask the configured LLM for an ordered plan; its valid steps become recommendations."""
        return plan_with_llm(self.settings, self.engine, media_ids=media_ids)

    def autolearn(self, *, auto: bool = False) -> dict[str, Any]:
        """One cycle (judge, find insights, recommend, apply the safe ones with ``auto``)."""
        return run_autolearn(self.dispatcher, auto=auto)

    def start_autolearn(self, *, auto: bool = False) -> TaskOutcome:
        """Start one autolearn cycle as a task and return at once (its id in the outcome)."""
        return self.dispatcher.start(CYCLE_TASK, {"auto": auto})

    def schedule(self) -> Schedule:
        """The schedule of heavy periodic work a worker runs, with its evidence."""
        return show_schedule(self.settings, self.engine, queued=self.dispatcher.queued)

    def learn_schedule(self, *, dry_run: bool = False) -> Schedule:
        return learn_schedule(
            self.settings, self.engine, queued=self.dispatcher.queued, dry_run=dry_run
        )

    def clear_schedule(self) -> bool:
        return clear_schedule(self.engine)

    # -- tasks ------------------------------------------------------------------

    def tasks(self, **filters: Any) -> list[TaskRow]:
        return list_tasks(self.engine, **filters)

    def task(self, task_id: int) -> TaskDetail:
        return task_detail(self.engine, task_id)

    def cancel(self, task_id: int) -> TaskOutcome:
        return self.dispatcher.cancel(task_id)

    def orphans(self) -> list[Orphan]:
        """Tasks whose process died, not yet taken back."""
        return self.dispatcher.orphans()

    def resume(
        self, *, on_outcome: Callable[[TaskOutcome], None] | None = None
    ) -> tuple[RecoveryReport, list[TaskOutcome]]:
        """Take back interrupted tasks: run them here, or re-send them to the queue."""
        return self.dispatcher.resume(on_outcome=on_outcome)

    def enqueue(self, task_type: str, params: dict[str, Any]) -> TaskOutcome:
        """Start one of :data:`ENQUEUEABLE` without waiting; ``InvalidInput`` otherwise.

        The task itself checks its parameters when it runs (an unknown media id
        ends it in ``error``); here only their names are checked.
        """
        allowed = ENQUEUEABLE.get(task_type)
        if allowed is None:
            raise InvalidInput(
                f"task type {task_type!r} cannot be started here; use one of "
                f"{', '.join(ENQUEUEABLE)}"
            )
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise InvalidInput(
                f"a {task_type} task takes {', '.join(allowed)}; not {', '.join(unknown)}"
            )
        return self.dispatcher.start(task_type, params)


def open_library(settings: Settings, *, migrate: bool = True) -> Library:
    """Open Atlas (see :func:`atlas.app.open_atlas`) behind one ``Library``."""
    return Library(open_atlas(settings, migrate=migrate))
