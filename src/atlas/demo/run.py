"""Run Atlas end to end on the sample library and report what it found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas.app import Atlas
from atlas.demo.build import DemoLibrary, build_library, load_items
from atlas.media import IngestReport, MediaPage, ingest_paths, list_media
from atlas.tasks import Dispatcher
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
    #: What the transcription stage did, file by file.
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
    # Ingest first and transcribe as a stage of its own, so that the slow part
    # has its own progress bar; transcription then goes on down the chain
    # (tagging, embedding) when auto_process is on.
    quiet = Dispatcher(atlas.settings.model_copy(update={"auto_process": False}), atlas.engine)
    ingest = ingest_paths(quiet, [folder], recursive=True, on_item=lambda _item: tick())

    # Subtitle sidecars first, else Whisper (the bundled tiny.en by default).
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
