"""``atlas migrate-store``: copy the library to PostgreSQL (and a Chroma server)."""

from __future__ import annotations

import typer
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, fail, progress_bar, state
from atlas.storage import StoreMigration, migrate_store


def migrate_store_command(
    ctx: typer.Context,
    to_database: str = typer.Option(
        ...,
        "--to-database",
        help="PostgreSQL URL to copy the database into (postgresql://user@host/dbname).",
    ),
    to_chroma: str | None = typer.Option(
        None, "--to-chroma", help="Chroma server (host:port) to copy the vectors into."
    ),
    batch: int = typer.Option(
        1000, "--batch", help="Rows per transaction (and vectors per request)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy the library (every table with its ids, and the vectors) to PostgreSQL and a
    Chroma server; resumable, verified, the library itself left as it is."""
    settings = state(ctx).settings
    with progress_bar("copying rows", unit="rows", disable=as_json) as bar:
        result = migrate_store(
            settings,
            database_url=to_database,
            chroma=to_chroma,
            batch_rows=batch,
            on_start=lambda stage, total: bar.start(total, stage),
            on_progress=bar.advance,
        )
    if as_json:
        emit_json(result.to_dict())
    else:
        _render(result)
    if not result.verified:
        fail(f"the copy differs from the library: {'; '.join(result.mismatches)}", 1)


def _say(line: str) -> None:
    # Plain text: URLs and addresses may hold brackets, and must stay on one line.
    console.print(line, markup=False, soft_wrap=True, highlight=False)


def _render(result: StoreMigration) -> None:
    if result.finished_before is not None:
        when = result.finished_before.strftime("%Y-%m-%d %H:%M:%S UTC")
        _say(f"{result.database} already holds this library (copied {when})")
    else:
        verb = "finished the copy of" if result.resumed else "copied"
        _say(f"{verb} {result.source} to {result.database}")
    table = Table(title="Tables", title_justify="left")
    for column in ("table", "in library", "in copy", "written now", "same"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for row in result.tables:
        table.add_row(
            row.table,
            f"{row.source_rows:,}",
            f"{row.target_rows:,}",
            f"{row.copied:,}",
            "yes" if row.matches else "NO",
        )
    console.print(table)
    if result.chroma is not None:
        if not result.collections:
            _say(f"vectors: the library has none to copy to {result.chroma}")
        else:
            vectors = Table(title=f"Vectors ({result.chroma})", title_justify="left")
            vectors.add_column("collection", overflow="fold")
            for column in ("in library", "in copy", "written now", "sampled", "same"):
                vectors.add_column(column, justify="right")
            for c in result.collections:
                vectors.add_row(
                    c.name,
                    f"{c.source_vectors:,}",
                    f"{c.target_vectors:,}",
                    f"{c.copied:,}",
                    f"{c.sampled - c.differing}/{c.sampled} equal",
                    "yes" if c.matches else "NO",
                )
            console.print(vectors)
    if result.sequences_reset:
        _say(f"id sequences moved past the copied ids: {result.sequences_reset}")
    _say(f"took {result.elapsed_s:.1f} s")
    if not result.verified:
        return
    _say("verified: every table and vector collection matches the library")
    _say("To use the copy, set in atlas.toml (this command does not change it):")
    url = result.settings["database_url"]
    hidden = "  # put the password back in" if ":***@" in url else ""
    _say(f'  database_url = "{url}"{hidden}')
    if "chroma.port" in result.settings:
        _say("  [chroma]")
        _say(f'  host = "{result.settings["chroma.host"]}"')
        _say(f"  port = {result.settings['chroma.port']}")
        if result.settings.get("chroma.ssl"):
            _say("  ssl = true")
    elif "chroma.host" in result.settings:
        _say("  # vectors stay in the embedded store of this data dir")


def register(app: typer.Typer) -> None:
    app.command("migrate-store")(migrate_store_command)
