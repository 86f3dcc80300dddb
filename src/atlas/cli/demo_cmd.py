"""``atlas demo``: build a real sample library and run Atlas on it."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, progress_bar, state
from atlas.cli.autolearn_cmd import render_cycle
from atlas.cli.search_cmd import render_clusters, render_search
from atlas.cli.tags_cmd import tag_cell
from atlas.demo import CORRUPT_FILE_NAME, LearningReport, run_demo
from atlas.transcription import TranscriptSummary


def demo(
    ctx: typer.Context,
    folder: Path | None = typer.Option(
        None, "--dir", help="Where to build the sample library (default: a new temp folder)."
    ),
    items: int | None = typer.Option(
        None, "--items", min=1, help="Build only the first N sample items (a quick try)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make ~36 short videos and podcasts with speech, then ingest and process them."""
    cli = state(ctx)
    folder = (folder or Path(tempfile.mkdtemp(prefix="atlas-demo-"))).expanduser().resolve()
    if cli.home is None and not os.environ.get("ATLAS_HOME"):
        # Keep the demo's data beside its files, away from the user's own library.
        cli.home = folder / ".atlas"
    atlas = cli.atlas()

    with progress_bar("demo", unit="files", disable=as_json) as bar:
        report = run_demo(
            atlas,
            folder,
            on_stage=lambda name, total: bar.start(total, name),
            on_step=bar.advance,
            limit=items,
        )

    unexpected = [
        item for item in report.ingest.failed if not item.path.endswith(CORRUPT_FILE_NAME)
    ]
    if as_json:
        emit_json(
            {
                "folder": str(folder),
                "home": str(atlas.settings.home),
                "ingest": report.ingest.summary(),
                "failures": [
                    {"path": item.path, "error": item.error} for item in report.ingest.failed
                ],
                "transcripts": report.transcript_sources(),
                "transcription_failures": [
                    {"media_id": item.media_id, "error": item.error}
                    for item in report.transcription.failed
                ],
                "media": [
                    {
                        **item.to_dict(),
                        "transcript": _transcript_dict(report.transcripts.get(item.id)),
                        "tags": [
                            {
                                "tag": tag.tag,
                                "kind": tag.kind,
                                "source": tag.source,
                                "confidence": tag.confidence,
                            }
                            for tag in report.media.tags[item.id]
                        ],
                    }
                    for item in report.media.items
                ],
                "tagging": report.tagging.summary(),
                "embedding": report.embedding.to_dict(),
                "search": report.search.to_dict() if report.search else None,
                "similar": report.similar.to_dict() if report.similar else None,
                "clusters": report.clusters.to_dict() if report.clusters else None,
                "learning": report.learning.to_dict() if report.learning else None,
                "autolearn": report.autolearn,
            }
        )
    else:
        table = Table(title=f"Sample library in {folder}", title_justify="left")
        for column in ("id", "type", "title", "duration", "container", "transcript", "tags"):
            table.add_column(column, overflow="fold")
        for item in report.media.items:
            tags = ", ".join(tag_cell(tag) for tag in report.media.tags[item.id][:5])
            duration = f"{item.duration_s:.1f}s" if item.duration_s else ""
            transcript = report.transcripts.get(item.id)
            table.add_row(
                str(item.id),
                item.media_type,
                item.title or "",
                duration,
                item.container or "",
                f"{transcript.source}, {transcript.words} words" if transcript else "",
                tags,
            )
        console.print(table)
        summary = ", ".join(f"{n} {status}" for status, n in report.ingest.summary().items())
        console.print(f"ingest: {summary}")
        by_source = report.transcript_sources().items()
        sources = ", ".join(f"{n} from {source}" for source, n in by_source)
        console.print(f"transcripts: {len(report.transcripts)} ({sources or 'none'})")
        for failed in report.transcription.failed:
            console.print(f"transcription failed: {failed.error}")
        by_tag_source = Counter(t.source for tags in report.media.tags.values() for t in tags)
        counted = ", ".join(f"{n} {source}" for source, n in sorted(by_tag_source.items()))
        console.print(
            f"tags: {counted or 'none'} (auto: set by the tagger; see why with "
            "atlas media-tags list ID --explain)"
        )
        for failure in report.ingest.failed:
            corrupt = failure.path.endswith(CORRUPT_FILE_NAME)
            console.print(f"failed{' (deliberately corrupt)' if corrupt else ''}: {failure.error}")
        embedding = report.embedding
        console.print(
            f"embeddings: {embedding.embedded} new, {embedding.unchanged} already embedded "
            f"by the processing chain, model {embedding.model}"
        )
        if report.search is not None:
            console.print()
            render_search(report.search)
        if report.similar is not None:
            console.print()
            render_search(report.similar)
        if report.clusters is not None:
            console.print()
            render_clusters(report.clusters)
        if report.learning is not None:
            console.print()
            _render_learning(report.learning)
        if report.autolearn is not None:
            console.print()
            render_cycle(report.autolearn)
            for insight in report.autolearn["insights"][:8]:
                typer.echo(f"  [{insight['severity']}] {insight['statement']}")
        console.print(f"\nExplore it: ATLAS_HOME={atlas.settings.home} atlas media list")
        console.print(
            f"            ATLAS_HOME={atlas.settings.home} atlas search-similar --query 'ocean'"
        )
        console.print(
            f"In a browser: ATLAS_HOME={atlas.settings.home} atlas serve  "
            "(then open http://127.0.0.1:8000/)"
        )
    for error in report.embedding.failed:
        typer.echo(f"atlas: {error}", err=True)
    for error in report.tagging.failed_tasks:
        typer.echo(f"atlas: {error}", err=True)
    if (
        unexpected
        or report.transcription.failed
        or report.tagging.failed_tasks
        or report.embedding.failed
    ):
        raise typer.Exit(1)


def _render_learning(learning: LearningReport) -> None:
    console.print(
        f"learning: a sample user corrected the tags of {learning.reviewed} items "
        f"({learning.review_edits} edits); Atlas learned from them and tagged the other "
        f"{learning.held_out} again"
    )
    per_item = max(1, learning.held_out)
    console.print(
        f"  edits those {learning.held_out} items need: {learning.edits_before} before "
        f"({learning.edits_before / per_item:.1f} per item), {learning.edits_after} after "
        f"({learning.edits_after / per_item:.1f} per item)"
    )
    for note in learning.notes:
        console.print(f"  the tagger learned: {note}")
    if learning.rules:
        for rule in learning.rules[:5]:
            console.print(f"  rule: {rule}")
    else:
        console.print(
            "  no rule yet: a rule needs a correction made consistently on many items "
            "(see atlas run-feedback-loop --analyze-only)"
        )


def _transcript_dict(summary: TranscriptSummary | None) -> dict[str, object] | None:
    if summary is None:
        return None
    return {
        "source": summary.source,
        "model": summary.model,
        "language": summary.language,
        "words": summary.words,
    }


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
