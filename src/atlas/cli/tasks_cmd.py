"""``atlas tasks list|show|cancel|resume`` and ``atlas worker``."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, progress_bar, state
from atlas.tasks.dispatcher import RecoveryReport
from atlas.tasks.worker import DailyJob, WorkerStart, run_worker

tasks_app = typer.Typer(help="Inspect and cancel tasks.", no_args_is_help=True)


@tasks_app.command("list")
def tasks_list(
    ctx: typer.Context,
    status: str | None = typer.Option(
        None, "--status", help="queued, running, completed, error or cancelled."
    ),
    task_type: str | None = typer.Option(None, "--type", help="Only this task type."),
    limit: int = typer.Option(20, "--limit", help="How many to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show recent tasks, newest first."""
    rows = state(ctx).library().tasks(status=status, task_type=task_type, limit=limit)
    if as_json:
        emit_json([row.to_dict() for row in rows])
        return
    if not rows:
        console.print("no tasks yet")
        return
    table = Table(title="Recent tasks", title_justify="left")
    for column in ("id", "type", "status", "tries", "duration", "created", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        duration = f"{row.duration_ms} ms" if row.duration_ms is not None else ""
        table.add_row(
            str(row.id),
            row.task_type,
            row.status,
            str(row.attempts),
            duration,
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.error_reason or "",
        )
    console.print(table)


@tasks_app.command("show")
def tasks_show(
    ctx: typer.Context,
    task_id: int = typer.Argument(..., help="The task id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one task: its parameters, result and every logged run."""
    detail = state(ctx).library().task(task_id)
    if as_json:
        emit_json(detail.to_dict())
        return
    task = detail.task
    console.print(
        f"task {task.id}: {task.task_type} [{task.status}] after {task.attempts} attempt(s)"
    )
    console.print(f"params: {task.params}")
    if detail.result is not None:
        console.print(f"result: {detail.result}")
    if task.error_reason:
        console.print(f"error: {task.error_reason}")
    for run in detail.runs:
        console.print(
            f"  run {run['id']}: {run['status']}, {run['duration_ms']} ms, "
            f"{run['retries']} retries, worker {run['worker']}"
        )


@tasks_app.command("cancel")
def tasks_cancel(
    ctx: typer.Context,
    task_id: int = typer.Argument(..., help="The task id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel a queued task, or ask a running one to stop (a dead run is closed at once)."""
    outcome = state(ctx).library().cancel(task_id)
    if as_json:
        emit_json({"task_id": outcome.task_id, "status": outcome.status})
    elif outcome.status == "running":
        console.print(f"task {outcome.task_id}: stopping (it stops at its next check)")
    else:
        console.print(f"task {outcome.task_id}: {outcome.status}")


@tasks_app.command("resume")
def tasks_resume(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only list the interrupted tasks; change nothing."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show and take back interrupted tasks: run them here, or re-send them to the queue."""
    library = state(ctx).library()
    if dry_run:
        orphans = library.orphans()
        if as_json:
            emit_json([orphan.to_dict() for orphan in orphans])
            return
        if not orphans:
            console.print("no interrupted tasks")
            return
        table = Table(title="Interrupted tasks", title_justify="left")
        for column in ("id", "type", "status", "held by", "lost runs"):
            table.add_column(column)
        for orphan in orphans:
            row = orphan.to_dict()
            table.add_row(
                str(orphan.id),
                orphan.task_type,
                orphan.status,
                row["owner"] or "",
                str(orphan.lost_runs),
            )
        console.print(table)
        return
    with progress_bar("resuming", unit="tasks", disable=as_json) as bar:
        report, outcomes = library.resume(on_outcome=lambda _outcome: bar.advance())
    if as_json:
        emit_json(
            {
                **report.to_dict(),
                "outcomes": [
                    {"task_id": o.task_id, "task_type": o.task_type, "status": o.status}
                    for o in outcomes
                ],
            }
        )
        return
    if not report.total:
        console.print("no interrupted tasks")
        return
    console.print(_describe_recovery(report, queued=library.dispatcher.queued))
    failed = [o for o in outcomes if o.status == "error"]
    if outcomes:
        console.print(f"ran {len(outcomes)} task(s): {len(outcomes) - len(failed)} completed")
    for outcome in failed:
        typer.echo(
            f"atlas: task {outcome.task_id} ({outcome.task_type}): {outcome.error}", err=True
        )
    if failed:
        raise typer.Exit(1)


def _describe_recovery(report: RecoveryReport, *, queued: bool) -> str:
    parts = []
    if report.resumed:
        verb = "re-queued" if queued else "resumed"
        types = ", ".join(f"{kind} {count}" for kind, count in sorted(report.types.items()))
        parts.append(f"{verb} {len(report.resumed)} interrupted task(s) ({types})")
    if report.resent:
        parts.append(f"re-sent {len(report.resent)} task(s) whose message the queue had lost")
    if report.closed:
        parts.append(f"closed {len(report.closed)} dead run(s) for good")
    return "; ".join(parts)


def worker(
    ctx: typer.Context,
    workers: int = typer.Option(
        min(4, os.cpu_count() or 1), "--workers", "-w", help="How many tasks to run at once."
    ),
    threads: bool = typer.Option(
        False, "--threads", help="Run tasks in threads instead of processes."
    ),
    nice: int = typer.Option(
        10,
        "--nice",
        help="Lower the worker's CPU priority by N (0-19) so that atlas serve and commands "
        "stay quick while it works; 0 keeps it.",
    ),
) -> None:
    """Run queued tasks (needs queue_url) and the daily jobs of the schedule."""
    library = state(ctx).library()
    dispatcher = library.dispatcher
    schedule = library.schedule()
    daily = [
        DailyJob(job.name, job.task_type, job.hour, job.minute, job.params) for job in schedule.jobs
    ]

    def started(start: WorkerStart) -> None:
        recovered = _describe_recovery(
            RecoveryReport(
                start.recovered.resumed,
                start.recovered.closed,
                start.resent.resent,
                start.recovered.types,
            ),
            queued=True,
        )
        typer.echo(
            f"atlas worker: {start.workers} {start.kind}(es) on {start.queue_url}"
            + (f"; {recovered}" if recovered else ""),
            err=True,
        )
        jobs = ", ".join(f"{job.name} {job.hour:02d}:{job.minute:02d}" for job in daily)
        typer.echo(f"atlas worker: daily ({schedule.source} schedule, UTC): {jobs}", err=True)

    def recovered(report: RecoveryReport) -> None:
        typer.echo(f"atlas worker: {_describe_recovery(report, queued=True)}", err=True)

    handed_back = run_worker(
        dispatcher,
        workers=workers,
        threads=threads,
        on_start=started,
        on_recovered=recovered,
        daily=daily,
        nice=nice,
    )
    if handed_back:
        typer.echo(f"atlas worker: handed {handed_back} running task(s) back", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tasks_app, name="tasks")
    app.command("worker")(worker)
