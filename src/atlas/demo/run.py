"""Run Atlas end to end on the sample library and report what it found.

The last stage shows Atlas learning: a sample user corrects the tags of half the
items (to the tags and genres the sample library ships with), the feedback loop
runs, and Atlas tags the other half again; the edits those items would need
before and after are counted the same way (tags removed plus tags added).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.app import Atlas
from atlas.autolearn import run_autolearn
from atlas.demo.build import DemoItem, DemoLibrary, build_library, load_items
from atlas.embeddings import (
    ClusterReport,
    EmbedReport,
    SearchResult,
    cluster_library,
    embed_media,
    search_media,
    similar_media,
)
from atlas.feedback import feedback_loop, list_rules, track_tag_edits
from atlas.media import IngestReport, MediaPage, ingest_paths, list_media, normalise_tag
from atlas.media.tags import Tag, tags_by_media
from atlas.tagging import RetagReport, load_vocabulary, retag_media
from atlas.tasks import Dispatcher
from atlas.transcription import (
    TranscribeReport,
    TranscriptSummary,
    transcribe_library,
    transcript_summaries,
)

__all__ = ["DEMO_QUERY", "DemoReport", "LearningReport", "run_demo"]

#: The text search the demo runs.
DEMO_QUERY = "astronauts exploring space"
#: The item the demo asks "more like this" about (the first embedded item otherwise).
_SIMILAR_TO = "The Quiet Orbit"


@dataclass
class LearningReport:
    """What the learning stage showed."""

    #: Items the sample user corrected, and the edits that took.
    reviewed: int
    review_edits: int
    #: The other items: the edits their tags needed before and after the learning.
    held_out: int
    edits_before: int
    edits_after: int
    #: The rules the feedback loop made (plain words), and what the tagger learned.
    rules: list[str]
    notes: list[str]

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class DemoReport:
    folder: Path
    library: DemoLibrary
    ingest: IngestReport
    media: MediaPage
    #: What the transcription stage did, file by file.
    transcription: TranscribeReport
    #: media id -> its transcript, for the items that have one.
    transcripts: dict[int, TranscriptSummary]
    #: The tagging stage (items the processing chain tagged already are ``unchanged``).
    tagging: RetagReport
    embedding: EmbedReport
    search: SearchResult | None = None
    similar: SearchResult | None = None
    clusters: ClusterReport | None = None
    learning: LearningReport | None = None
    #: The autolearn cycle run at the end (its report).
    autolearn: dict[str, Any] | None = None

    def transcript_sources(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for summary in self.transcripts.values():
            counts[summary.source] = counts.get(summary.source, 0) + 1
        return dict(sorted(counts.items()))


def run_demo(
    atlas: Atlas,
    folder: Path,
    *,
    on_stage: Callable[[str, int], None] | None = None,
    on_step: Callable[[], None] | None = None,
    limit: int | None = None,
) -> DemoReport:
    """Build the sample library in ``folder``, run the whole pipeline on it, search it.

    Ingest, then transcription (subtitle sidecars first, else Whisper) which goes
    on down the chain (tagging, embedding) when ``auto_process`` is on; then
    tags and embeds whatever is left, runs one text search, one "more like this"
    and clusters the library, and ends with an autolearn cycle. ``limit`` builds
    only the first items, for a quick try.
    ``on_stage(name, total)`` announces each stage and ``on_step()`` reports one
    unit of progress within it.
    """
    tick = on_step or (lambda: None)

    def stage(name: str, total: int) -> None:
        if on_stage is not None and total:
            on_stage(name, total)

    items = load_items()[:limit]
    stage("making media", len(items))
    library = build_library(folder, items=items, on_file=lambda _path: tick())

    # Ingest first and transcribe as a stage of its own, so that the slow part
    # has its own progress bar.
    stage("ingesting", len(library.files) + 1)
    quiet = Dispatcher(atlas.settings.model_copy(update={"auto_process": False}), atlas.engine)
    ingest = ingest_paths(quiet, [folder], recursive=True, on_item=lambda _item: tick())
    transcription = transcribe_library(
        atlas.dispatcher,
        all_media=True,
        chain=atlas.settings.auto_process,
        on_start=lambda total: stage("transcribing", total),
        on_item=lambda _item: tick(),
    )

    def advanced(count: int) -> None:
        for _ in range(count):
            tick()

    tagging = retag_media(
        atlas.dispatcher,
        all_media=True,
        on_start=lambda total: stage("tagging", total),
        on_progress=advanced,
    )

    embedding = embed_media(
        atlas.dispatcher,
        all_media=True,
        on_start=lambda total: stage("embedding", total),
        on_progress=advanced,
    )
    media = list_media(atlas.engine, limit=1000)
    report = DemoReport(
        folder=folder,
        library=library,
        ingest=ingest,
        media=media,
        transcription=transcription,
        transcripts=transcript_summaries(atlas.engine, [item.id for item in media.items]),
        tagging=tagging,
        embedding=embedding,
    )
    if embedding.failed or not media.items:
        return report

    settings, engine = atlas.settings, atlas.engine
    report.search = search_media(settings, engine, DEMO_QUERY, top=5)
    source = next((item for item in media.items if item.title == _SIMILAR_TO), media.items[0])
    report.similar = similar_media(settings, engine, source.id, top=5)
    if len(media.items) >= 3:
        report.clusters = cluster_library(atlas.dispatcher)
    if len(media.items) >= 2:
        titles = {item.id: item.title for item in media.items}
        report.learning = _learn(atlas, items, titles, stage, advanced)
    # Last: what Atlas itself notices about the library it just built, and advises.
    report.autolearn = run_autolearn(atlas.dispatcher)
    return report


def _learn(
    atlas: Atlas,
    items: list[DemoItem],
    titles: dict[int, str | None],
    stage: Callable[[str, int], None],
    advanced: Callable[[int], None],
) -> LearningReport:
    """The sample user corrects every other item; Atlas learns and tags the rest again."""
    settings, engine = atlas.settings, atlas.engine
    by_title = {item.title: [*item.genres, *item.tags] for item in items}
    # In the sample's own order, not the ids' (ingest gives ids as files finish),
    # so that every run reviews the same items.
    order = {item.title: index for index, item in enumerate(items)}
    found = sorted((order[title], m) for m, title in titles.items() if title in by_title)
    truth = {m: by_title[titles[m] or ""] for _, m in found}
    with engine.connect() as connection:
        tags = tags_by_media(connection, list(truth))
    reviewed, held_out = list(truth)[::2], list(truth)[1::2]

    def edits(media_id: int, shown: list[Tag]) -> int:
        wanted = {normalise_tag(tag) for tag in truth[media_id]}
        return len(wanted ^ {normalise_tag(tag.tag) for tag in shown})

    kinds = load_vocabulary(settings.tagging).kinds()
    stage("learning", len(reviewed) + len(held_out))
    review_edits = 0
    for media_id in reviewed:
        review_edits += edits(media_id, tags[media_id])
        track_tag_edits(
            engine, settings.feedback, media_id, tags=truth[media_id], vocabulary_kinds=kinds
        )
        advanced(1)
    feedback_loop(atlas.dispatcher)
    before = sum(edits(media_id, tags[media_id]) for media_id in held_out)
    again = retag_media(
        atlas.dispatcher,
        targets=[str(media_id) for media_id in held_out],
        force=True,
        on_progress=advanced,
    )
    with engine.connect() as connection:
        after_tags = tags_by_media(connection, held_out)
    notes = list(dict.fromkeys(note for item in again.items for note in item.notes))
    return LearningReport(
        reviewed=len(reviewed),
        review_edits=review_edits,
        held_out=len(held_out),
        edits_before=before,
        edits_after=sum(edits(media_id, after_tags[media_id]) for media_id in held_out),
        rules=[rule.description or rule.label for rule in list_rules(engine) if rule.enabled],
        notes=notes,
    )
