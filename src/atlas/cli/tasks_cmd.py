"""``atlas tasks list|show|cancel`` and ``atlas worker``."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, state
from atlas.errors import InvalidInput
from atlas.tasks.history import list_tasks, task_detail

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
    rows = list_tasks(state(ctx).atlas().engine, status=status, task_type=task_type, limit=limit)
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
    detail = task_detail(state(ctx).atlas().engine, task_id)
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
    """Cancel a queued task, or ask a running one to stop."""
    outcome = state(ctx).atlas().dispatcher.cancel(task_id)
    if as_json:
        emit_json({"task_id": outcome.task_id, "status": outcome.status})
    else:
        console.print(f"task {outcome.task_id}: {outcome.status}")


def worker(
    ctx: typer.Context,
    workers: int = typer.Option(
        min(4, os.cpu_count() or 1), "--workers", "-w", help="How many tasks to run at once."
    ),
    threads: bool = typer.Option(
        False, "--threads", help="Run tasks in threads instead of processes."
    ),
) -> None:
    """Run queued tasks (needs queue_url); several workers may share one queue."""
    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    atlas = state(ctx).atlas()
    dispatcher = atlas.dispatcher
    if not dispatcher.queued:
        raise InvalidInput(
            "no task queue is configured, so tasks run in-process; set queue_url "
            "(e.g. ATLAS_QUEUE_URL=sqlite or redis://127.0.0.1:6379/0) to use workers"
        )
    if not threads:
        # Each forked process opens its own database connections.
        os.register_at_fork(after_in_child=lambda: atlas.engine.dispose(close=False))
    requeued = dispatcher.requeue_orphans()
    kind = "thread" if threads else "process"
    typer.echo(
        f"atlas worker: {workers} {kind}(es) on {dispatcher.queue.url}"
        + (f"; re-sent {requeued} orphaned task(s)" if requeued else ""),
        err=True,
    )
    dispatcher.queue.consumer(workers=workers, worker_type=kind).run()


def register(app: typer.Typer) -> None:
    app.add_typer(tasks_app, name="tasks")
    app.command("worker")(worker)
