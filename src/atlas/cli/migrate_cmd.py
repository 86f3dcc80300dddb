"""``atlas migrate``: bring the database schema up to date."""

from __future__ import annotations

import typer

from atlas.cli._common import JSON_OPTION, console, emit_json, state
from atlas.db import describe_url, make_engine, migration_status, upgrade


def migrate(
    ctx: typer.Context,
    status_only: bool = typer.Option(
        False, "--status", help="Only show the current and pending migrations."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Apply pending database migrations (idempotent), or show where the schema stands."""
    settings = state(ctx).settings
    engine = make_engine(
        settings.database,
        busy_timeout_s=settings.busy_timeout_s,
        database_timeout_s=settings.database_timeout_s,
    )
    try:
        before = migration_status(engine)
        after = before if status_only else upgrade(engine)
    finally:
        engine.dispose()
    applied = [rev for rev in before.pending if rev not in after.pending]
    if as_json:
        emit_json(
            {
                "database": describe_url(settings.database),
                "current": after.current,
                "head": after.head,
                "pending": list(after.pending),
                "applied": applied,
            }
        )
        return
    console.print(f"database: {describe_url(settings.database)}")
    if status_only:
        console.print(f"current revision: {after.current or 'none (empty database)'}")
        console.print(f"latest revision:  {after.head}")
        pending = ", ".join(after.pending) if after.pending else "none"
        console.print(f"pending: {pending}")
    elif applied:
        console.print(
            f"applied {len(applied)} migration(s): {', '.join(applied)}; now at {after.current}"
        )
    else:
        console.print(f"already up to date at {after.current}")


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
