"""``atlas media-ingest`` and ``atlas media list|show``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, one_line, progress_bar, state
from atlas.db.tables import MEDIA_TYPES
from atlas.errors import InvalidInput
from atlas.media import MediaRecord

media_app = typer.Typer(help="Browse the media library.", no_args_is_help=True)


def media_ingest(
    ctx: typer.Context,
    # Text, not Path: a Path turns "" into "." (the current folder); "" is refused.
    paths: list[str] | None = typer.Argument(
        None, metavar="PATHS", help="Files and folders to ingest."
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into subfolders."),
    force: bool = typer.Option(False, "--force", help="Re-probe files even if unchanged."),
    catalog: str | None = typer.Option(
        None,
        "--catalog",
        metavar="FILE",
        help="Import records from a CSV, JSON Lines or .nfo folder.",
    ),
    process: bool | None = typer.Option(
        None,
        "--process/--no-process",
        help="Schedule transcription, tagging and embedding of new items "
        "(default: the auto_process setting, true unless set).",
        show_default=False,
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="With a task queue: wait for the workers to finish."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ingest media files and folders (probe, fingerprint, sidecars), or a catalogue."""
    cli = state(ctx)
    if not paths and catalog is None:
        raise InvalidInput("give files or folders to ingest, or --catalog FILE")
    if process is not None:  # else the setting (config file, ATLAS_AUTO_PROCESS) decides
        cli.override(auto_process=process)
    library = cli.library()
    # Travels with each task, so a worker with another auto_process obeys this command.
    process = library.settings.auto_process

    if catalog is not None:
        with progress_bar("importing", unit="records", disable=as_json) as bar:
            report = library.import_catalog(
                catalog,
                process=process,
                on_start=bar.start,
                on_progress=bar.advance,
            )
        if as_json:
            emit_json(
                {
                    "created": report.created,
                    "updated": report.updated,
                    "kept": report.kept.to_dict(),
                    "errors": report.failed_tasks,
                }
            )
        else:
            kept = f"; {report.kept.describe()}" if report.kept else ""
            console.print(
                f"catalogue: {len(report.created)} created, {len(report.updated)} updated{kept}"
            )
        for error in report.failed_tasks:
            typer.echo(f"atlas: {error}", err=True)
        if report.failed_tasks:
            raise typer.Exit(1)
        if not paths:
            return

    with progress_bar("ingesting", unit="files", disable=as_json) as bar:
        report_files = library.ingest(
            paths or [],
            recursive=recursive,
            force=force,
            wait=wait,
            process=process,
            on_start=bar.start,
            on_item=lambda _item: bar.advance(),
        )

    if as_json:
        emit_json(
            {
                "summary": report_files.summary(),
                "missing": report_files.missing,
                "kept": report_files.kept.to_dict(),
                "items": report_files.items,
                "unreadable": report_files.unreadable,
            }
        )
    else:
        summary = ", ".join(f"{n} {status}" for status, n in report_files.summary().items())
        kept = f"; {report_files.kept.describe()}" if report_files.kept else ""
        console.print(f"{len(report_files.items)} file(s): {summary or 'nothing to do'}{kept}")
        if report_files.missing:
            console.print(
                f"{report_files.missing} known file(s) under these folders are gone "
                "(marked missing; their data is kept)"
            )
        if report_files.media_ids:
            console.print("media ids: " + " ".join(str(i) for i in report_files.media_ids))
        queued = [item.task_id for item in report_files.items if item.status == "queued"]
        if queued:
            console.print(f"queued {len(queued)} task(s) for `atlas worker`")
    for item in report_files.failed:
        typer.echo(f"atlas: {one_line(item.error or item.path)}", err=True)
    for line in report_files.unreadable:
        typer.echo(f"atlas: {one_line(line)}", err=True)
    if report_files.failed or report_files.unreadable:
        raise typer.Exit(1)


@media_app.command("list")
def media_list(
    ctx: typer.Context,
    media_type: str | None = typer.Option(None, "--type", help="video, audio, image or other."),
    limit: int = typer.Option(50, "--limit", help="How many to show."),
    offset: int = typer.Option(0, "--offset", help="How many to skip."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List media items with their type, duration and tags."""
    if media_type is not None and media_type not in MEDIA_TYPES:
        raise InvalidInput(f"unknown media type {media_type!r}; use {', '.join(MEDIA_TYPES)}")
    page = state(ctx).library().media_page(media_type=media_type, limit=limit, offset=offset)
    if as_json:
        emit_json(
            {
                "total": page.total,
                "items": [
                    {**item.to_dict(), "tags": [tag.tag for tag in page.tags[item.id]]}
                    for item in page.items
                ],
            }
        )
        return
    if not page.items:
        console.print(
            "the library is empty; add media with: atlas media-ingest PATH"
            if page.total == 0
            else "no media on this page"
        )
        return
    table = Table(title=f"Media ({len(page.items)} of {page.total})", title_justify="left")
    for column in ("id", "type", "title", "duration", "tags", "path"):
        table.add_column(column, overflow="fold")
    for item in page.items:
        tags = ", ".join(tag.tag for tag in page.tags[item.id][:6])
        table.add_row(
            str(item.id), item.media_type, item.title or "", _duration(item), tags, _path(item)
        )
    console.print(table)


@media_app.command("show")
def media_show(
    ctx: typer.Context,
    media_id: int = typer.Argument(..., help="The media id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show everything Atlas knows about one media item."""
    detail = state(ctx).library().media(media_id)
    if as_json:
        emit_json(detail.to_dict())
        return
    item = detail.media
    table = Table(show_header=False, title=f"Media {item.id}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = {
        "title": item.title,
        "type": item.media_type,
        "path": _path(item),
        "duration": _duration(item),
        "container": item.container,
        "video": f"{item.video_codec} {item.width}x{item.height}" if item.video_codec else None,
        "audio": item.audio_codec,
        "bitrate": f"{item.bitrate // 1000} kb/s" if item.bitrate else None,
        "artist": item.artist,
        "genre": item.genre,
        "year": item.year,
        "rating": item.rating,
        "description": item.description,
        "fingerprint": item.content_hash,
        "duplicate of": item.duplicate_of,
        "tags": ", ".join(f"{t.tag} ({t.source})" for t in detail.tags),
        "sidecars": ", ".join(Path(s["path"]).name for s in detail.sidecars),
        "transcript": (detail.transcript["text"][:300] if detail.transcript else None),
    }
    for key, value in rows.items():
        if value not in (None, ""):
            table.add_row(key, str(value))
    console.print(table)


@media_app.command("move")
def media_move(
    ctx: typer.Context,
    media_id: int = typer.Argument(..., help="The media id."),
    destination: str = typer.Argument(
        ..., metavar="DESTINATION", help="A folder in the library, or a new file path."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Move an item's file (and its sidecars) within the library; Atlas learns from it."""
    report = state(ctx).library().move(media_id, destination)
    if as_json:
        emit_json(report.to_dict())
        return
    extra = f" (and {len(report.sidecars)} sidecar file(s))" if report.sidecars else ""
    typer.echo(f"moved media {media_id}: {report.source} -> {report.target}{extra}")


@media_app.command("edit")
def media_edit(
    ctx: typer.Context,
    media_id: int = typer.Argument(..., help="The media id."),
    title: str | None = typer.Option(None, "--title", help="New title."),
    genre: str | None = typer.Option(None, "--genre", help="New genre."),
    description: str | None = typer.Option(None, "--description", help="New description."),
    artist: str | None = typer.Option(None, "--artist", help="New artist or director."),
    year: int | None = typer.Option(None, "--year", help="New year."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Edit an item's title, genre, description, artist or year; recorded as feedback."""
    report = (
        state(ctx)
        .library()
        .edit(
            media_id,
            title=title,
            genre=genre,
            description=description,
            artist=artist,
            year=year,
        )
    )
    if as_json:
        emit_json(report.to_dict())
        return
    for change in report.changes:
        typer.echo(f"media {media_id}: {change.name} {change.before!r} -> {change.after!r}")
    if not report.changes:
        typer.echo(f"media {media_id}: nothing changed")


def _duration(item: MediaRecord) -> str:
    if item.duration_s is None:
        return f"{item.runtime_min:.0f} min" if item.runtime_min else ""
    minutes, seconds = divmod(round(item.duration_s), 60)
    return f"{minutes}:{seconds:02d}"


def _path(item: MediaRecord) -> str:
    if item.path is None:
        return "(catalogue record)"
    return f"{item.path} (missing)" if item.missing else item.path


def register(app: typer.Typer) -> None:
    app.command("media-ingest")(media_ingest)
    app.add_typer(media_app, name="media")
