"""Run Atlas end to end on the sample library and report what it found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas.app import Atlas
from atlas.demo.build import DemoLibrary, build_library, load_items
from atlas.media import IngestReport, MediaPage, ingest_paths, list_media
from atlas.transcription import (
    TranscribeReport,
    TranscriptSummary,
    transcribe_library,
    transcript_summaries,
)

__all__ = ["DemoReport", "run_demo"]


@dataclass
class DemoReport:
    folder: Path
    library: DemoLibrary
    ingest: IngestReport
    media: MediaPage
    #: What transcription did beyond the processing chain (usually nothing left).
    transcription: TranscribeReport
    #: media id -> its transcript, for the items that have one.
    transcripts: dict[int, TranscriptSummary]

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
    """Build the sample library in ``folder``, ingest it (and process it), list it.

    ``limit`` builds only the first items, for a quick try.
    ``on_stage(name, total)`` announces each stage and ``on_step()`` reports one
    unit of progress within it.
    """
    tick = on_step or (lambda: None)
    items = load_items()[:limit]
    if on_stage is not None:
        on_stage("making media", len(items))
    library = build_library(folder, items=items, on_file=lambda _path: tick())

    if on_stage is not None:
        on_stage("ingesting", len(library.files) + 1)
    # With auto_process on (the default), each ingest task schedules transcription
    # (subtitle sidecars first, else Whisper), then tagging and embedding.
    ingest = ingest_paths(atlas.dispatcher, [folder], recursive=True, on_item=lambda _item: tick())

    # Whatever the chain did not transcribe (auto_process off): transcribe it now.
    transcription = transcribe_library(
        atlas.dispatcher,
        all_media=True,
        chain=True,
        on_start=lambda total: on_stage("transcribing", total) if on_stage and total else None,
        on_item=lambda _item: tick(),
    )
    media = list_media(atlas.engine, limit=1000)
    transcripts = transcript_summaries(atlas.engine, [item.id for item in media.items])
    return DemoReport(
        folder=folder,
        library=library,
        ingest=ingest,
        media=media,
        transcription=transcription,
        transcripts=transcripts,
    )
