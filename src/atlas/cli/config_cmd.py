"""``atlas config show``: the effective settings and where each came from."""

from __future__ import annotations

import typer
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, state

config_app = typer.Typer(help="Inspect the settings.", no_args_is_help=True)


@config_app.command("show")
def show(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Print the effective settings and the source of each (flag, env, file, default)."""
    loaded = state(ctx).loaded
    rows = list(loaded.rows())
    if as_json:
        emit_json(
            {
                "config_file": str(loaded.config_file) if loaded.config_file else None,
                "settings": {
                    key: {"value": value, "source": source} for key, value, source in rows
                },
            }
        )
        return
    table = Table(title="Atlas settings", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_column("source", style="dim")
    for key, value, source in rows:
        shown = "" if value is None else str(value)
        if "api_key" in key and value:
            shown = "********"
        table.add_row(key, shown, source)
    console.print(table)
    where = loaded.config_file or "none (no atlas.toml in the data dir)"
    console.print(f"config file: {where}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
