"""``atlas smart-transcribe``: speech to text, subtitles first; and its analytics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, in_flags, progress_bar, state
from atlas.errors import InvalidInput
from atlas.transcription import (
    BatchItem,
    TranscribeReport,
    TranscriptionAnalytics,
)


def smart_transcribe(
    ctx: typer.Context,
    paths: list[Path] | None = typer.Argument(
        None, help="Files and folders to transcribe (ingested first when new)."
    ),
    media: list[int] | None = typer.Option(
        None, "--media", help="A media id to transcribe (repeatable)."
    ),
    all_media: bool = typer.Option(
        False, "--all", help="Every media item without a current transcript (all with --force)."
    ),
    batch: str | None = typer.Option(
        None,
        "--batch",
        help="Media whose path matches this glob: '*.mkv' matches file names, "
        "'shows/*/*.mkv' or an absolute pattern whole paths.",
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into subfolders."),
    force: bool = typer.Option(
        False, "--force", help="Run the model even when subtitles exist, and redo transcripts."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="tiny, base, small, medium, large-v3, turbo (+ .en variants) or a local model "
        "folder; default: the bundled tiny.en (setting transcription.model).",
    ),
    quality: str | None = typer.Option(
        None,
        "--quality",
        help="fast, balanced or high: choose the model from the media's length and the "
        "hardware (used when no model is set).",
    ),
    language: str | None = typer.Option(
        None, "--language", help="Language code (en, de, ...); default: detect per file."
    ),
    process: bool | None = typer.Option(
        None,
        "--process/--no-process",
        help="Afterwards, schedule tagging and embedding of the items "
        "(default: the auto_process setting).",
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="With a task queue: wait for the workers to finish."
    ),
    analytics: bool = typer.Option(
        False, "--analytics", help="Show transcription throughput by model instead."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Transcribe speech to text; subtitle sidecars and streams are used when present."""
    cli = state(ctx)
    selected = bool(paths or media or all_media or batch)
    if analytics:
        if selected:
            raise InvalidInput("--analytics takes no media; run it on its own")
        _show_analytics(cli.library().transcription_analytics(), as_json)
        return
    if not selected:
        raise InvalidInput("say what to transcribe: PATH..., --media ID, --all or --batch GLOB")
    library = cli.library()

    with progress_bar("transcribing", unit="files", disable=as_json) as bar:
        report = library.transcribe(
            media_ids=media or [],
            paths=paths or [],
            all_media=all_media,
            batch=batch,
            recursive=recursive,
            force=force,
            model=model,
            quality=quality,
            language=language,
            chain=library.settings.auto_process if process is None else process,
            wait=wait,
            on_start=bar.start,
            on_item=lambda _item: bar.advance(),
        )

    if as_json:
        emit_json(
            {
                "summary": report.summary(),
                "sources": report.sources(),
                "left_out": report.left_out,
                "items": report.items,
            }
        )
    else:
        _show_report(report)
    # One line per distinct reason: a bad model name fails every file the same way.
    reasons = Counter(item.error or "failed" for item in report.failed)
    for reason, count in reasons.items():
        typer.echo(f"atlas: {reason}" + (f" ({count} files)" if count > 1 else ""), err=True)
    if report.failed:
        raise typer.Exit(1)


def _show_report(report: TranscribeReport) -> None:
    rows = [item for item in report.items if item.status != "error" or item.media_id is not None]
    if rows:
        table = Table(title="Transcription", title_justify="left")
        for column in ("id", "file", "status", "source", "model", "lang", "words", "audio", "RTF"):
            table.add_column(column, overflow="fold")
        for item in rows:
            table.add_row(*_cells(item))
        console.print(table)
        for item in rows:
            for note in (item.result or {}).get("notes") or []:
                console.print(f"media {item.media_id}: {in_flags(note)}")
    summary = ", ".join(f"{n} {status}" for status, n in report.summary().items())
    sources = ", ".join(f"{source} {n}" for source, n in sorted(report.sources().items()))
    line = f"{len(report.items)} item(s): {summary or 'nothing to do'}"
    console.print(line + (f" ({sources})" if sources else ""))
    if report.left_out:
        console.print(f"{report.left_out} matching item(s) have no audio or subtitles: left out")
    queued = report.count("queued")
    if queued:
        console.print(f"queued {queued} task(s) for `atlas worker`")


def _cells(item: BatchItem) -> list[str]:
    result = item.result or {}
    name = Path(item.path).name if item.path else "(no file)"
    status = item.status
    if item.status == "skipped" and result.get("reason"):
        status = f"skipped: {in_flags(result['reason'])}"
    elif item.status == "error":
        status = "error"
    audio = result.get("audio_duration_s")
    rtf = result.get("real_time_factor")
    return [
        str(item.media_id or ""),
        name,
        status,
        str(result.get("source") or ""),
        str(result.get("model") or ""),
        str(result.get("language") or ""),
        str(result.get("words", "")) if item.status == "transcribed" else "",
        f"{audio:.1f}s" if audio else "",
        f"{rtf:.3f}" if rtf is not None else "",
    ]


def _show_analytics(data: TranscriptionAnalytics, as_json: bool) -> None:
    if as_json:
        emit_json(data.to_dict())
        return
    if not data.transcripts:
        console.print("no transcripts yet; make some with: atlas smart-transcribe --all")
        return
    if data.by_model:
        table = Table(title="Transcription throughput by model", title_justify="left")
        for column in ("model", "device", "files", "audio", "wall", "audio s / wall s", "mean RTF"):
            table.add_column(column, overflow="fold")
        for row in data.by_model:
            table.add_row(
                row.model if "/" not in row.model else Path(row.model).name,
                f"{row.device or '?'} {row.compute_type or ''}".strip(),
                str(row.transcripts),
                f"{row.audio_s:.1f}s",
                f"{row.wall_s:.1f}s",
                f"{row.throughput:.1f}" if row.throughput is not None else "",
                f"{row.mean_rtf:.3f}" if row.mean_rtf is not None else "",
            )
        console.print(table)
    sources = ", ".join(f"{source} {n}" for source, n in data.by_source.items())
    console.print(f"transcripts: {data.transcripts} ({sources})")
    if data.task_runs:
        runs = ", ".join(f"{n} {status}" for status, n in data.task_runs.items())
        mean = ""
        if data.mean_task_ms:
            mean = f"; mean {data.mean_task_ms / 1000:.2f}s per completed run"
        console.print(f"transcribe runs: {runs}{mean}")


def register(app: typer.Typer) -> None:
    app.command("smart-transcribe")(smart_transcribe)
