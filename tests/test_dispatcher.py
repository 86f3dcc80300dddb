"""The dispatcher runs every task and writes task_logs with no help from the task."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from atlas.config import TaskPolicy
from atlas.db.tables import task_logs, tasks
from atlas.errors import InvalidInput, NotFound, Unavailable
from atlas.tasks import Dispatcher, TaskContext, task_type

CALLS: dict[str, int] = {}


def _key() -> str:
    return uuid.uuid4().hex


@task_type("test-echo")
def _echo(ctx: TaskContext, value: int) -> dict[str, int]:
    with ctx.engine.connect() as connection:
        status = connection.scalar(
            select(task_logs.c.status).where(task_logs.c.task_id == ctx.task_id)
        )
    return {"value": value, "log_status_while_running": status}


@task_type("test-invalid", retries=3, retry_delay_s=0)
def _invalid(ctx: TaskContext) -> None:
    raise InvalidInput("media 42 has nothing to embed")


@task_type("test-flaky", retries=3, retry_delay_s=0)
def _flaky(ctx: TaskContext, key: str, failures: int) -> str:
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] <= failures:
        raise Unavailable(f"server busy (attempt {CALLS[key]})")
    return "done"


@task_type("test-crash")
def _crash(ctx: TaskContext) -> None:
    raise ZeroDivisionError("division by zero in frame 3")


_INTERRUPTS: dict[str, int] = {}


@task_type("test-interrupt")
def _interrupt(ctx: TaskContext, key: str) -> str:
    """Interrupted (Ctrl-C) the first time it runs."""
    _INTERRUPTS[key] = _INTERRUPTS.get(key, 0) + 1
    if _INTERRUPTS[key] == 1:
        raise KeyboardInterrupt
    return "done"


@task_type("test-self-cancel")
def _self_cancel(ctx: TaskContext) -> None:
    ctx.dispatcher.cancel(ctx.task_id)
    ctx.raise_if_cancelled(min_interval_s=0)
    raise AssertionError("should have been cancelled")


@task_type("test-parent")
def _parent(ctx: TaskContext) -> list[int]:
    child = ctx.submit("test-echo", {"value": 7})
    assert child.status == "queued"  # runs after this task ends
    return [child.task_id]


def _logs(atlas, task_id):
    with atlas.engine.connect() as connection:
        return connection.execute(
            select(task_logs).where(task_logs.c.task_id == task_id).order_by(task_logs.c.id)
        ).all()


def test_a_successful_task_is_logged_running_then_completed(atlas):
    outcome = atlas.dispatcher.submit("test-echo", {"value": 3})
    assert outcome.ok
    assert outcome.result == {"value": 3, "log_status_while_running": "running"}
    [log] = _logs(atlas, outcome.task_id)
    assert log.status == "completed"
    assert log.task_type == "test-echo"
    assert log.duration_ms is not None and log.duration_ms >= 0
    assert log.retries == 0 and log.error_reason is None
    assert log.finished_at >= log.created_at


def test_a_permanent_failure_is_one_error_row_with_the_message_and_no_retries(atlas):
    outcome = atlas.dispatcher.submit("test-invalid")
    assert outcome.status == "error"
    [log] = _logs(atlas, outcome.task_id)
    assert log.status == "error"
    assert log.error_reason == "media 42 has nothing to embed"
    assert log.retries == 0


def test_transient_failures_are_retried_and_counted(atlas):
    outcome = atlas.dispatcher.submit("test-flaky", {"key": _key(), "failures": 2})
    assert outcome.ok and outcome.result == "done"
    [log] = _logs(atlas, outcome.task_id)
    assert (log.status, log.retries) == ("completed", 2)


def test_exhausted_retries_end_in_error_with_the_last_reason(atlas):
    outcome = atlas.dispatcher.submit("test-flaky", {"key": _key(), "failures": 99})
    [log] = _logs(atlas, outcome.task_id)
    assert (log.status, log.retries) == ("error", 3)
    assert log.error_reason == "server busy (attempt 4)"


def test_retry_policy_is_configurable_per_task_type(make_settings):
    from atlas.app import open_atlas

    settings = make_settings(tasks={"test-flaky": TaskPolicy(retries=0)})
    atlas = open_atlas(settings)
    outcome = atlas.dispatcher.submit("test-flaky", {"key": _key(), "failures": 1})
    [log] = _logs(atlas, outcome.task_id)
    assert (log.status, log.retries) == ("error", 0)
    atlas.close()


def test_an_unexpected_exception_is_logged_as_a_readable_line(atlas):
    outcome = atlas.dispatcher.submit("test-crash")
    [log] = _logs(atlas, outcome.task_id)
    assert log.error_reason == "ZeroDivisionError: division by zero in frame 3"
    assert "Traceback" not in log.error_reason


def test_an_interrupted_task_is_handed_back_and_the_next_command_runs_it(atlas, settings):
    from atlas.app import open_atlas

    with pytest.raises(KeyboardInterrupt):
        atlas.dispatcher.submit("test-interrupt", {"key": (key := _key())})
    with atlas.engine.connect() as connection:
        task = connection.execute(select(tasks).order_by(tasks.c.id.desc())).first()
    [log] = _logs(atlas, task.id)
    assert (task.status, task.lease_owner, task.handbacks) == ("queued", None, 1)
    assert log.status == "cancelled"
    assert log.error_reason == "interrupted; handed back to the library to run again"

    # The next command (another process, here another Atlas) takes it first thing.
    later = open_atlas(settings)
    seen = []
    later.dispatcher.on_recovered = seen.append
    later.dispatcher.submit("test-echo", {"value": 1})
    assert later.dispatcher.outcome(task.id).ok
    assert [report.resumed for report in seen] == [[task.id]]
    first, second = _logs(atlas, task.id)
    assert (first.status, second.status, second.retries) == ("cancelled", "completed", 1)
    later.close()
    _INTERRUPTS.pop(key)


def test_a_running_task_stops_when_cancelled(atlas):
    outcome = atlas.dispatcher.submit("test-self-cancel")
    assert outcome.status == "cancelled"
    [log] = _logs(atlas, outcome.task_id)
    assert log.status == "cancelled"


def test_a_task_submitted_by_a_task_runs_after_it(atlas):
    outcome = atlas.dispatcher.submit("test-parent")
    [child_id] = outcome.result
    child = atlas.dispatcher.outcome(child_id)
    assert child.ok and child.result["value"] == 7
    with atlas.engine.connect() as connection:
        parent_id = connection.scalar(select(tasks.c.parent_id).where(tasks.c.id == child_id))
    assert parent_id == outcome.task_id


def test_unknown_task_type_is_refused_before_anything_is_written(atlas):
    with pytest.raises(NotFound, match="unknown task type 'nope'"):
        atlas.dispatcher.submit("nope")
    with atlas.engine.connect() as connection:
        assert connection.execute(select(tasks)).first() is None


def test_cancelling_a_queued_task_logs_it_cancelled_and_it_never_runs(make_settings, tmp_path):
    from atlas.app import open_atlas

    atlas = open_atlas(make_settings(queue_url=f"sqlite:///{tmp_path / 'q.db'}"))
    outcome = atlas.dispatcher.submit("test-echo", {"value": 1})
    assert outcome.status == "queued"
    assert atlas.dispatcher.cancel(outcome.task_id).status == "cancelled"
    # The message is still in the queue; a worker that picks it up does nothing.
    atlas.dispatcher.execute(outcome.task_id)
    [log] = _logs(atlas, outcome.task_id)
    assert (log.status, log.error_reason) == ("cancelled", "cancelled before it ran")
    with pytest.raises(InvalidInput, match="already finished"):
        atlas.dispatcher.cancel(outcome.task_id)
    atlas.close()


def test_a_message_delivered_twice_runs_the_task_once(make_settings, tmp_path):
    from atlas.app import open_atlas

    atlas = open_atlas(make_settings(queue_url=f"sqlite:///{tmp_path / 'q.db'}"))
    dispatcher: Dispatcher = atlas.dispatcher
    outcome = dispatcher.submit("test-echo", {"value": 5})
    dispatcher.execute(outcome.task_id)
    dispatcher.execute(outcome.task_id)
    assert len(_logs(atlas, outcome.task_id)) == 1
    assert dispatcher.outcome(outcome.task_id).ok
    atlas.close()


def test_an_unreachable_queue_fails_clearly_and_marks_the_task(make_settings):
    from atlas.app import open_atlas

    atlas = open_atlas(make_settings(queue_url="redis://127.0.0.1:1/0"))
    with pytest.raises(Unavailable, match="task queue at redis://127.0.0.1:1/0 is not reachable"):
        atlas.dispatcher.submit("test-echo", {"value": 1})
    with atlas.engine.connect() as connection:
        task = connection.execute(select(tasks)).one()
    assert task.status == "error"
    atlas.close()


def test_tasks_list_and_show_cli(cli, atlas):
    ok = atlas.dispatcher.submit("test-echo", {"value": 1})
    atlas.dispatcher.submit("test-invalid")
    listed = cli("tasks", "list", "--status", "error")
    assert listed.exit_code == 0, listed.output
    assert "test-invalid" in listed.stdout and "test-echo" not in listed.stdout
    shown = cli("tasks", "show", str(ok.task_id), "--json")
    assert '"status": "completed"' in shown.stdout
    bad = cli("tasks", "list", "--status", "finished")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("atlas: unknown status 'finished'")
