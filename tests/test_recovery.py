"""Leases and recovery: a task whose process died is taken again, never lost, never doubled.

The processes here are real: a command is started as a subprocess, holds a task,
and is killed with SIGKILL (or stopped with SIGSTOP) while it runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

import task_plugins  # noqa: F401  (registers test-hold here too)
from atlas.app import open_atlas
from atlas.db import utcnow
from atlas.db.tables import task_logs, tasks

TESTS = Path(__file__).parent
LEASE_S = 3.0


def _env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "ATLAS_HOME": str(home),
        "ATLAS_DATABASE_URL": database_url,
        "ATLAS_AUTO_PROCESS": "false",
        "ATLAS_EXECUTION__LEASE_S": str(LEASE_S),
        "PYTHONPATH": path,
        **extra,
    }


def _start_holder(home: Path, database_url: str, marks: Path, hold: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import task_plugins; task_plugins.submit_and_hold()",
            str(marks),
            str(hold),
        ],
        env=_env(home, database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_for(marks: Path, word: str, count: int = 1, timeout_s: float = 60) -> list[list[str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marks.exists():
            lines = [line.split() for line in marks.read_text().splitlines()]
            found = [line for line in lines if line[0] == word]
            if len(found) >= count:
                return found
        time.sleep(0.05)
    raise AssertionError(f"no {word!r} in {marks} after {timeout_s} s")


def _logs(engine, task_id):
    with engine.connect() as connection:
        return connection.execute(
            select(task_logs).where(task_logs.c.task_id == task_id).order_by(task_logs.c.id)
        ).all()


def _task(engine, task_id):
    with engine.connect() as connection:
        return connection.execute(select(tasks).where(tasks.c.id == task_id)).one()


@pytest.fixture
def leased(make_settings):
    """An Atlas with short leases, in-process."""
    atlas = open_atlas(make_settings(auto_process=False, execution={"lease_s": LEASE_S}))
    yield atlas
    atlas.close()


def test_a_task_whose_process_was_killed_runs_again_with_the_next_command(
    leased, home, database_url, tmp_path
):
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    hold.touch()
    holder = _start_holder(home, database_url, marks, hold)
    [(_, pid, task_id)] = _wait_for(marks, "start")
    holder.kill()
    holder.wait()
    hold.unlink()

    # On the same machine a dead owner is seen at once: no need to wait for the lease.
    report, outcomes = leased.dispatcher.resume()
    assert report.resumed == [int(task_id)]
    assert [o.status for o in outcomes] == ["completed"]
    dead, rerun = _logs(leased.engine, int(task_id))
    assert dead.status == "error"
    assert dead.error_reason == f"worker {socket.gethostname()}:{pid} stopped (lease expired)"
    assert (rerun.status, rerun.retries) == ("completed", 1)
    task = _task(leased.engine, int(task_id))
    assert (task.status, task.lost_runs, task.lease_owner) == ("completed", 1, None)
    assert leased.dispatcher.orphans() == []


def test_recovery_takes_expired_leases_of_other_machines_and_leaves_live_ones(leased, tmp_path):
    now = utcnow()
    hold = tmp_path / "hold"  # absent: the task finishes at once
    params = {"marks": str(tmp_path / "marks"), "hold_file": str(hold)}

    def running(owner: str, expires_in_s: float) -> tuple[int, int]:
        with leased.engine.begin() as connection:
            task_id = connection.execute(
                insert(tasks)
                .values(
                    task_type="test-hold",
                    status="running",
                    params=params,
                    attempts=1,
                    created_at=now - timedelta(minutes=2),
                    started_at=now - timedelta(minutes=1),
                    worker=owner,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=expires_in_s),
                )
                .returning(tasks.c.id)
            ).scalar_one()
            log_id = connection.execute(
                insert(task_logs)
                .values(
                    task_id=task_id,
                    task_type="test-hold",
                    status="running",
                    created_at=now - timedelta(minutes=1),
                    worker=owner,
                )
                .returning(task_logs.c.id)
            ).scalar_one()
            connection.execute(update(tasks).where(tasks.c.id == task_id).values(log_id=log_id))
        return task_id, log_id

    dead_id, _ = running("elsewhere:4242:4026531836:0badf00d", expires_in_s=-10)
    live_id, _ = running("elsewhere:4343:4026531836:c0ffee00", expires_in_s=60)

    report, outcomes = leased.dispatcher.resume()
    assert report.resumed == [dead_id]
    assert [o.task_id for o in outcomes if o.ok] == [dead_id]
    dead, rerun = _logs(leased.engine, dead_id)
    assert dead.error_reason == "worker elsewhere:4242 stopped (lease expired)"
    # The dead run lasted until its last heartbeat, one lease before the lease ran
    # out: a minute, less the 10 s since then and the lease's 3 s.
    assert 46_000 <= dead.duration_ms <= 48_000
    assert rerun.status == "completed"
    [live] = _logs(leased.engine, live_id)
    assert live.status == "running"
    assert _task(leased.engine, live_id).status == "running"


def test_a_task_whose_process_keeps_dying_is_not_taken_again_for_ever(make_settings, tmp_path):
    atlas = open_atlas(make_settings(auto_process=False, execution={"max_lost_runs": 2}))
    now = utcnow()
    with atlas.engine.begin() as connection:
        task_id = connection.execute(
            insert(tasks)
            .values(
                task_type="test-hold",
                status="running",
                params={"marks": str(tmp_path / "m"), "hold_file": str(tmp_path / "h")},
                attempts=3,
                lost_runs=2,
                created_at=now,
                started_at=now,
                lease_owner="elsewhere:1:1:1",
                lease_expires_at=now - timedelta(seconds=1),
            )
            .returning(tasks.c.id)
        ).scalar_one()
        connection.execute(
            insert(task_logs).values(
                task_id=task_id, task_type="test-hold", status="running", created_at=now
            )
        )
    report, outcomes = atlas.dispatcher.resume()
    assert (report.resumed, report.closed, outcomes) == ([], [task_id], [])
    task = _task(atlas.engine, task_id)
    assert (task.status, task.lost_runs) == ("error", 3)
    assert "stopped 3 times while running this task, so it is not run again" in task.error_reason
    [log] = _logs(atlas.engine, task_id)
    assert log.status == "error"
    atlas.close()


def test_cancelling_a_dead_run_closes_its_log_row_at_once(leased, home, database_url, tmp_path):
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    hold.touch()
    holder = _start_holder(home, database_url, marks, hold)
    [(_, _pid, task_id)] = _wait_for(marks, "start")
    holder.kill()
    holder.wait()

    outcome = leased.dispatcher.cancel(int(task_id))
    assert outcome.status == "cancelled"
    [log] = _logs(leased.engine, int(task_id))
    assert log.status == "cancelled" and log.finished_at is not None
    assert leased.dispatcher.resume()[0].total == 0


def test_a_process_that_lost_its_lease_does_not_close_the_task_again(
    leased, home, database_url, tmp_path
):
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    hold.touch()
    holder = _start_holder(home, database_url, marks, hold)
    [(_, _pid, task_id)] = _wait_for(marks, "start")
    holder.send_signal(signal.SIGSTOP)  # alive, but silent: its lease runs out
    try:
        deadline = time.monotonic() + 30
        while _task(leased.engine, int(task_id)).lease_expires_at > utcnow():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        hold.unlink()
        report, outcomes = leased.dispatcher.resume()
        assert report.resumed == [int(task_id)]
        assert outcomes[0].result == {"pid": os.getpid()}
    finally:
        holder.send_signal(signal.SIGCONT)
    holder.wait(timeout=60)

    # The stopped process woke up, finished its copy of the work, and found the
    # task taken: it closed nothing.
    assert _wait_for(marks, "end", count=2)
    first, second = _logs(leased.engine, int(task_id))
    assert (first.status, second.status) == ("error", "completed")
    task = _task(leased.engine, int(task_id))
    assert task.result == {"pid": os.getpid()}
    assert task.status == "completed"


def test_a_command_interrupted_before_running_its_follow_ups_leaves_them_to_the_next(
    leased, settings
):
    # The queued tasks a killed command held (its in-process chain) are orphans
    # once it is gone; simulate the dead owner with a foreign, expired lease.
    with leased.engine.begin() as connection:
        task_id = connection.execute(
            insert(tasks)
            .values(
                task_type="test-hold",
                status="queued",
                params={"marks": "/dev/null", "hold_file": "/nonexistent"},
                created_at=utcnow(),
                lease_owner="elsewhere:7:7:7",
                lease_expires_at=utcnow() - timedelta(seconds=1),
            )
            .returning(tasks.c.id)
        ).scalar_one()
    assert [orphan.id for orphan in leased.dispatcher.orphans()] == [task_id]
    leased.dispatcher.submit_many("test-hold", [])
    task = _task(leased.engine, task_id)
    assert (task.status, task.lost_runs) == ("completed", 0)
    [log] = _logs(leased.engine, task_id)
    assert (log.status, log.retries) == ("completed", 0)


def test_only_tasks_whose_message_is_lost_are_sent_again_and_back_off_is_kept(
    make_settings, tmp_path
):
    atlas = open_atlas(make_settings(queue_url=f"sqlite:///{tmp_path / 'q.db'}"))
    dispatcher = atlas.dispatcher
    params = {"marks": "/dev/null", "hold_file": "/nonexistent"}
    first = dispatcher.submit("test-hold", params).task_id
    second = dispatcher.submit("test-hold", params).task_id
    long_ago = utcnow() - timedelta(hours=1)
    with atlas.engine.begin() as connection:
        connection.execute(update(tasks).values(enqueued_at=long_ago, created_at=long_ago))
    # Both messages wait in the queue: nothing is sent twice.
    assert dispatcher.resend_lost_messages().resent == []
    assert dispatcher.queue.pending() == 2

    # The queue loses both; the second was a retry waiting for its back-off.
    dispatcher.queue.huey.flush()
    with atlas.engine.begin() as connection:
        connection.execute(
            update(tasks)
            .where(tasks.c.id == second)
            .values(not_before=utcnow() + timedelta(hours=1))
        )
    assert sorted(dispatcher.resend_lost_messages().resent) == [first, second]
    assert dispatcher.queue.pending_task_ids() == {first, second}
    etas = {task.args[0]: task.eta for task in dispatcher.queue.huey.pending()}
    assert etas[first] is None
    # Huey's etas are naive UTC: the retry is not due before its back-off ends.
    assert etas[second] >= (utcnow() + timedelta(minutes=59)).replace(tzinfo=None)
    # Just re-sent: a second pass sends nothing.
    assert dispatcher.resend_lost_messages().resent == []
    dispatcher.queue.huey.flush()
    atlas.close()


def test_tasks_resume_cli_lists_then_runs_interrupted_tasks(cli, leased, tmp_path):
    with leased.engine.begin() as connection:
        task_id = connection.execute(
            insert(tasks)
            .values(
                task_type="test-hold",
                status="queued",
                params={"marks": str(tmp_path / "marks"), "hold_file": "/nonexistent"},
                created_at=utcnow(),
            )
            .returning(tasks.c.id)
        ).scalar_one()
    listed = cli("tasks", "resume", "--dry-run")
    assert listed.exit_code == 0, listed.output
    assert f"{task_id}" in listed.stdout and "test-hold" in listed.stdout
    assert _task(leased.engine, task_id).status == "queued"

    ran = cli("tasks", "resume")
    assert ran.exit_code == 0, ran.output
    assert "resumed 1 interrupted task(s) (test-hold 1)" in ran.stdout
    assert "ran 1 task(s): 1 completed" in ran.stdout
    assert _task(leased.engine, task_id).status == "completed"
    assert cli("tasks", "resume").stdout.strip() == "no interrupted tasks"


def test_sigterm_stops_a_command_as_ctrl_c_does_and_hands_its_task_back(
    leased, home, database_url, tmp_path
):
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    hold.touch()
    with leased.engine.begin() as connection:
        task_id = connection.execute(
            insert(tasks)
            .values(
                task_type="test-hold",
                status="queued",
                params={"marks": str(marks), "hold_file": str(hold)},
                created_at=utcnow(),
            )
            .returning(tasks.c.id)
        ).scalar_one()
    command = subprocess.Popen(
        [sys.executable, "-c", "import task_plugins; task_plugins.main()", "tasks", "resume"],
        env=_env(home, database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for(marks, "start")
    command.send_signal(signal.SIGTERM)
    output = command.communicate(timeout=60)[0].decode()
    assert command.returncode == 130, output
    assert output.strip().splitlines()[-1] == "atlas: interrupted"
    [log] = _logs(leased.engine, task_id)
    assert (log.status, log.error_reason) == (
        "cancelled",
        "interrupted; handed back to the library to run again",
    )
    task = _task(leased.engine, task_id)
    assert (task.status, task.lease_owner, task.handbacks) == ("queued", None, 1)

    hold.unlink()
    report, outcomes = leased.dispatcher.resume()
    assert report.resumed == [task_id] and outcomes[0].ok
