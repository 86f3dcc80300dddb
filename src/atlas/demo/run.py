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
    embedding: EmbedReport
    search: SearchResult | None = None
    similar: SearchResult | None = None
    clusters: ClusterReport | None = None


def run_demo(
    atlas: Atlas,
    folder: Path,
    *,
    on_stage: Callable[[str, int], None] | None = None,
    on_step: Callable[[], None] | None = None,
    limit: int | None = None,
) -> DemoReport:
    """Build the sample library in ``folder``, ingest and process it, then search it.

    After ingest (which, with ``auto_process``, already embeds each new file),
    embeds whatever is left, runs one text search, one "more like this" and
    clusters the library. ``limit`` builds only the first items, for a quick try.
    ``on_stage(name, total)`` announces each stage and ``on_step()`` reports one
    unit of progress within it.
    """
    tick = on_step or (lambda: None)
    chosen = load_items()[:limit]
    if on_stage is not None:
        on_stage("making media", len(chosen))
    library = build_library(folder, items=chosen, on_file=lambda _path: tick())

    if on_stage is not None:
        on_stage("ingesting", len(library.files) + 1)
    ingest = ingest_paths(atlas.dispatcher, [folder], recursive=True, on_item=lambda _item: tick())

    def embedding_started(total: int) -> None:
        if on_stage is not None and total:
            on_stage("embedding", total)

    def embedded(count: int) -> None:
        for _ in range(count):
            tick()

    embedding = embed_media(
        atlas.dispatcher, all_media=True, on_start=embedding_started, on_progress=embedded
    )
    media = list_media(atlas.engine, limit=1000)
    report = DemoReport(
        folder=folder, library=library, ingest=ingest, media=media, embedding=embedding
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
