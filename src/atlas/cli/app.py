"""The ``atlas`` command: global flags, and every command registered in one place."""

from __future__ import annotations

from pathlib import Path

import typer

from atlas import __version__
from atlas.cli import (
    analytics_cmd,
    config_cmd,
    demo_cmd,
    feedback_cmd,
    media_cmd,
    migrate_cmd,
    tasks_cmd,
    transcribe_cmd,
)
from atlas.cli._common import AtlasGroup, CliState

__all__ = ["app", "main"]

app = typer.Typer(
    cls=AtlasGroup,
    name="atlas",
    help="Atlas: a local-first media-library engine that learns from use.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"atlas {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, "--home", help="Data dir (default: ATLAS_HOME, else the user data dir)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Settings file (default: atlas.toml in the data dir)."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="SQLAlchemy URL of the database (SQLite or PostgreSQL)."
    ),
    queue_url: str | None = typer.Option(
        None, "--queue-url", help="Task queue: sqlite, sqlite:///PATH or redis://HOST:PORT/DB."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Atlas: ingest, transcribe, tag, embed and search a media library; learn from edits."""
    cli_state = CliState(
        home=home,
        config=config,
        overrides={"database_url": database_url, "queue_url": queue_url},
    )
    ctx.obj = cli_state
    ctx.call_on_close(cli_state.close)


for module in (
    config_cmd,
    migrate_cmd,
    media_cmd,
    transcribe_cmd,
    tasks_cmd,
    analytics_cmd,
    feedback_cmd,
    demo_cmd,
):
    module.register(app)


def main() -> None:
    app()
