"""``atlas embed-media`` (also the console script ``atlas-embed-media``)."""

from __future__ import annotations

import typer

from atlas.cli._common import JSON_OPTION, console, emit_json, progress_bar, state


def embed_media(
    ctx: typer.Context,
    media: list[int] | None = typer.Option(
        None, "--media", help="Embed this media id (repeat for several)."
    ),
    all_media: bool = typer.Option(False, "--all", help="Embed every new or changed item."),
    batch: int | None = typer.Option(
        None, "--batch", help="Items per task and model call (default: embedding.batch_size)."
    ),
    force: bool = typer.Option(False, "--force", help="Embed again even if nothing changed."),
    verify: bool = typer.Option(
        False, "--verify", help="With --all: check the vector store against the database."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Embed media items into the vector store (only new or changed ones unless --force)."""
    library = state(ctx).library()
    with progress_bar("embedding", unit="items", disable=as_json) as bar:
        report = library.embed(
            media_ids=media or (),
            all_media=all_media,
            force=force,
            verify=verify,
            batch_size=batch,
            on_start=lambda total: bar.start(total) if total else None,
            on_progress=bar.advance,
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        if report.set_aside:
            console.print(
                f"the vector store was damaged: moved it to {report.set_aside} and "
                "built a new one from the database"
            )
        dimension = f" ({report.dimension}-d)" if report.dimension else ""
        rate = f", {report.items_per_s:,.1f} items/s" if report.items_per_s else ""
        parts = [
            f"embedded {report.embedded} item(s) with {report.model}{dimension} "
            f"in {report.elapsed_s:.1f} s{rate}"
        ]
        if report.unchanged:
            parts.append(f"{report.unchanged} unchanged")
        if report.empty:
            parts.append(f"{len(report.empty)} with nothing to embed")
        if report.removed:
            parts.append(f"{report.removed} stale vector(s) removed")
        if report.repaired:
            parts.append(f"{report.repaired} missing vector(s) restored")
        console.print("; ".join(parts))
    for error in report.failed:
        typer.echo(f"atlas: {error}", err=True)
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("embed-media")(embed_media)
