"""The ``atlas`` command: global flags, and every command registered in one place."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

import typer

from atlas import __version__
from atlas.cli import (
    analytics_cmd,
    autolearn_cmd,
    config_cmd,
    demo_cmd,
    embed_cmd,
    feedback_cmd,
    media_cmd,
    migrate_cmd,
    schedule_cmd,
    search_cmd,
    serve_cmd,
    storage_cmd,
    tags_cmd,
    tasks_cmd,
    transcribe_cmd,
)
from atlas.cli._common import AtlasCommand, AtlasGroup, CliState

__all__ = ["app", "main", "standalone"]

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
    # Text, not Path: a Path turns "" into "." (the current folder); "" is refused.
    home: str | None = typer.Option(
        None,
        "--home",
        metavar="DIR",
        help="Data dir (default: ATLAS_HOME, else the user data dir).",
    ),
    config: str | None = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="Settings file (default: atlas.toml in the data dir).",
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
    storage_cmd,
    media_cmd,
    transcribe_cmd,
    tags_cmd,
    embed_cmd,
    search_cmd,
    tasks_cmd,
    analytics_cmd,
    feedback_cmd,
    autolearn_cmd,
    schedule_cmd,
    demo_cmd,
    serve_cmd,
):
    module.register(app)


def main() -> None:
    app()


def standalone(command: Callable[..., None], name: str) -> typer.Typer:
    """A console script that runs one command, with the global flags of ``atlas``.

    ``atlas-embed-media --home X --all`` is ``atlas --home X embed-media --all``:
    the same root callback sets up the same ``CliState``, and the same error edge
    turns failures into one line and an exit code.
    """
    hints = {**get_type_hints(root), **get_type_hints(command)}
    global_params = [
        parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[parameter.name])
        for parameter in inspect.signature(root).parameters.values()
        if parameter.name != "ctx"
    ]
    command_params = [
        parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[parameter.name])
        for parameter in inspect.signature(command).parameters.values()
        if parameter.name != "ctx"
    ]
    global_names = {parameter.name for parameter in global_params}
    clash = global_names & {parameter.name for parameter in command_params}
    if clash:
        raise ValueError(f"{name}: options {sorted(clash)} clash with the global flags")

    def run(ctx: typer.Context, **values: Any) -> None:
        root(ctx, **{key: values.pop(key) for key in global_names})
        command(ctx, **values)

    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    run.__signature__ = inspect.Signature([context, *command_params, *global_params])  # type: ignore[attr-defined]
    run.__annotations__ = {
        "ctx": typer.Context,
        **{p.name: p.annotation for p in command_params + global_params},
    }
    run.__doc__ = command.__doc__
    script = typer.Typer(
        name=name,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    script.command(name=name, cls=AtlasCommand)(run)
    return script
