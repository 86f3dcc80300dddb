"""``atlas schedule show|apply|clear``: the learned schedule of heavy periodic work."""

from __future__ import annotations

import typer

from atlas.autolearn import Schedule
from atlas.cli._common import JSON_OPTION, emit_json, state

schedule_app = typer.Typer(
    help="Run heavy periodic work in the library's quiet hours (with atlas worker).",
    no_args_is_help=True,
)


def _say(text: str) -> None:
    typer.echo(text)


def render_schedule(schedule: Schedule) -> None:
    hours = ", ".join(f"{hour:02d}" for hour in schedule.quiet_hours)
    _say(f"schedule ({schedule.source}): quiet hours {hours} UTC")
    for job in schedule.jobs:
        _say(f"  {job.hour:02d}:{job.minute:02d} UTC  {job.name}")
    rule = schedule.evidence.get("rule")
    if rule:
        _say(f"  why: {rule}")
    busy = schedule.evidence.get("busy_arrival_hours") or []
    if busy:
        _say("  media arrives mostly at " + ", ".join(f"{h:02d}" for h in busy) + " h")
    if not schedule.queued:
        _say(
            "  no task queue is configured, so nothing runs on this schedule; "
            "set queue_url and start: atlas worker"
        )


@schedule_app.command("show")
def show_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The schedule a worker runs, with its evidence."""
    schedule = state(ctx).library().schedule()
    if as_json:
        emit_json(schedule.to_dict())
        return
    render_schedule(schedule)


@schedule_app.command("apply")
def apply_command(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the schedule; store nothing."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Learn the quiet hours from the library's activity and store the schedule."""
    library = state(ctx).library()
    schedule = library.learn_schedule(dry_run=dry_run)
    if as_json:
        emit_json(schedule.to_dict())
        return
    render_schedule(schedule)
    if library.settings.autolearn.schedule_hours:
        _say("  note: autolearn.schedule_hours in the settings overrides the learned hours")


@schedule_app.command("clear")
def clear_command(ctx: typer.Context) -> None:
    """Forget the learned schedule (the daily autolearn cycle stays)."""
    had = state(ctx).library().clear_schedule()
    _say("learned schedule cleared" if had else "no learned schedule to clear")


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")
