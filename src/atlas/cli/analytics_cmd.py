"""``atlas analyze-task-metrics``: success rates, failure reasons, trends, bottlenecks, cleanup."""

from __future__ import annotations

import typer

from atlas.cli import _analytics_view as view
from atlas.cli._common import JSON_OPTION, console, emit_json, state
from atlas.errors import InvalidInput

DEFAULT_HOURS = 24
DEFAULT_DAYS = 7
#: With a task queue, how long --cleanup waits for a worker to run it.
CLEANUP_WAIT_S = 600.0


def analyze_task_metrics(
    ctx: typer.Context,
    hours: int | None = typer.Option(
        None,
        "--hours",
        help=f"Look at the last N hours (default {DEFAULT_HOURS}).",
        metavar="N",
    ),
    trends: bool = typer.Option(
        False, "--trends", help="Per day and task type, with the direction of change."
    ),
    days: int | None = typer.Option(
        None,
        "--days",
        help=f"With --trends: the last N days (default {DEFAULT_DAYS}).",
        metavar="N",
    ),
    bottlenecks: bool = typer.Option(
        False, "--bottlenecks", help="Slow task types, the longest runs, queue wait vs run time."
    ),
    threshold: int | None = typer.Option(
        None,
        "--threshold",
        help="With --bottlenecks: a run is slow above MS milliseconds (default: the p95).",
        metavar="MS",
    ),
    cleanup: bool = typer.Option(
        False,
        "--cleanup",
        help="Delete task logs older than --keep-days (kept as daily summaries first).",
    ),
    keep_days: int | None = typer.Option(
        None,
        "--keep-days",
        help="With --cleanup: keep N days of task logs (default: analytics.retention_days).",
        metavar="N",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="With --cleanup: show what would be deleted, delete nothing."
    ),
    task_type: str | None = typer.Option(
        None, "--type", help="Only this task type.", metavar="TASK_TYPE"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Analyse task runs: success rate, durations, retries and failure reasons (last 24 h).

    --trends draws daily figures per task type with their direction of change,
    --bottlenecks finds slow task types, --cleanup applies the retention policy.
    """
    _check_flags(
        hours, trends, days, bottlenecks, threshold, cleanup, keep_days, dry_run, task_type
    )
    library = state(ctx).library()
    if cleanup:
        report = library.cleanup(
            keep_days=keep_days,
            dry_run=dry_run,
            wait_timeout_s=CLEANUP_WAIT_S,
        )
        if as_json:
            emit_json(report.to_dict())
        else:
            view.cleanup(console, report)
        return
    if trends:
        trend_report = library.trends(
            days=DEFAULT_DAYS if days is None else days,
            task_type=task_type,
        )
        if as_json:
            emit_json(trend_report.to_dict())
        else:
            view.trends(console, trend_report)
        return
    window_hours = DEFAULT_HOURS if hours is None else hours
    if bottlenecks:
        bottleneck_report = library.bottlenecks(
            hours=window_hours, threshold_ms=threshold, task_type=task_type
        )
        if as_json:
            emit_json(bottleneck_report.to_dict())
        else:
            view.bottlenecks(console, bottleneck_report)
        return
    summary = library.metrics(hours=window_hours, task_type=task_type)
    if as_json:
        emit_json(summary.to_dict())
    else:
        view.summary(console, summary)


def _check_flags(
    hours: int | None,
    trends: bool,
    days: int | None,
    bottlenecks: bool,
    threshold: int | None,
    cleanup: bool,
    keep_days: int | None,
    dry_run: bool,
    task_type: str | None,
) -> None:
    """Refuse flag combinations that would be silently ignored."""
    modes = [
        name
        for name, on in (
            ("--trends", trends),
            ("--bottlenecks", bottlenecks),
            ("--cleanup", cleanup),
        )
        if on
    ]
    if len(modes) > 1:
        raise InvalidInput(
            f"choose one of --trends, --bottlenecks and --cleanup (got {' '.join(modes)})"
        )
    if days is not None and not trends:
        raise InvalidInput("--days goes with --trends (the summary and --bottlenecks take --hours)")
    if hours is not None and (trends or cleanup):
        other = "--days" if trends else "--keep-days"
        raise InvalidInput(f"{modes[0]} takes {other}, not --hours")
    if threshold is not None and not bottlenecks:
        raise InvalidInput("--threshold goes with --bottlenecks")
    if keep_days is not None and not cleanup:
        raise InvalidInput("--keep-days goes with --cleanup")
    if dry_run and not cleanup:
        raise InvalidInput("--dry-run goes with --cleanup")
    if task_type is not None and cleanup:
        raise InvalidInput("--cleanup applies to every task type; leave out --type")


def register(app: typer.Typer) -> None:
    app.command("analyze-task-metrics")(analyze_task_metrics)
