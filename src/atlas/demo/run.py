"""Run Atlas end to end on the sample library and report what it found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas.app import Atlas
from atlas.demo.build import DemoLibrary, build_library, load_items
from atlas.media import IngestReport, MediaPage, ingest_paths, list_media

__all__ = ["DemoReport", "run_demo"]


@dataclass
class DemoReport:
    folder: Path
    library: DemoLibrary
    ingest: IngestReport
    media: MediaPage


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
    ingest = ingest_paths(atlas.dispatcher, [folder], recursive=True, on_item=lambda _item: tick())
    media = list_media(atlas.engine, limit=1000)
    return DemoReport(folder=folder, library=library, ingest=ingest, media=media)
