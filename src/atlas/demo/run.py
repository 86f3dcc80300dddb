"""Run Atlas end to end on the sample library and report what it found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas.app import Atlas
from atlas.demo.build import DemoLibrary, build_library, load_items
from atlas.embeddings import (
    ClusterReport,
    EmbedReport,
    SearchResult,
    cluster_library,
    embed_media,
    search_media,
    similar_media,
)
from atlas.media import IngestReport, MediaPage, ingest_paths, list_media
from atlas.tagging import RetagReport, retag_media
from atlas.tasks import Dispatcher
from atlas.transcription import (
    TranscribeReport,
    TranscriptSummary,
    transcribe_library,
    transcript_summaries,
)

__all__ = ["DEMO_QUERY", "DemoReport", "run_demo"]

#: The text search the demo runs.
DEMO_QUERY = "astronauts exploring space"
#: The item the demo asks "more like this" about (the first embedded item otherwise).
_SIMILAR_TO = "The Quiet Orbit"


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
    and clusters the library. ``limit`` builds only the first items, for a quick try.
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
        chain=True,
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
    return report
