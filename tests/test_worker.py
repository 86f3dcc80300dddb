"""A real ``atlas worker`` process consumes a real Huey queue (SQLite and Redis)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

import task_plugins  # noqa: F401  (registers test-hold here too)
from atlas.app import open_atlas
from atlas.db.tables import task_logs
from atlas.media import ingest_paths

REDIS_URL = os.environ.get("ATLAS_TEST_REDIS_URL")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_worker_processes_run_queued_ingest_tasks_and_log_them(
    backend, make_settings, media_maker, tmp_path, home, database_url
):
    if backend == "redis" and not REDIS_URL:
        pytest.skip("set ATLAS_TEST_REDIS_URL to run against Redis")
    queue_url = REDIS_URL if backend == "redis" else f"sqlite:///{tmp_path / 'queue.db'}"
    queue_name = f"atlas-test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(queue_url=queue_url, queue_name=queue_name, auto_process=False)
    atlas = open_atlas(settings)

    library = tmp_path / "library"
    for index in range(4):
        media_maker.copy(
            media_maker.video(
                f"v{index}.mp4",
                pattern=("testsrc2", "rgbtestsrc", "smptebars", "mandelbrot")[index],
            ),
            library / f"v{index}.mp4",
        )
    (library / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")

    report = ingest_paths(atlas.dispatcher, [library], wait=False)
    assert report.summary() == {"queued": 5}

    env = {
        **os.environ,
        "ATLAS_HOME": str(home),
        "ATLAS_DATABASE_URL": database_url,
        "ATLAS_QUEUE_URL": queue_url,
        "ATLAS_QUEUE_NAME": queue_name,
        "ATLAS_AUTO_PROCESS": "false",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "atlas", "worker", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        outcomes = atlas.dispatcher.wait([item.task_id for item in report.items], timeout_s=90)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            output = worker.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            worker.kill()
            output = worker.communicate()[0].decode()
        atlas.dispatcher.queue.huey.flush()

    assert [o.status for o in outcomes].count("completed") == 4, output
    [failed] = [o for o in outcomes if o.status == "error"]
    assert "broken.mp4: not a readable media file" in (failed.error or "")
    with atlas.engine.connect() as connection:
        logs = connection.execute(select(task_logs)).all()
    assert sorted(log.status for log in logs) == ["completed"] * 4 + ["error"]
    assert all(log.worker and not log.worker.endswith(f":{os.getpid()}") for log in logs)
    assert all(log.queue_wait_ms is not None and log.duration_ms is not None for log in logs)
    atlas.close()


# --- leases: a worker that dies or stops loses no task ---------------------------

TESTS = Path(__file__).parent


def _queue_url(backend: str, tmp_path: Path) -> str:
    if backend == "redis":
        if not REDIS_URL:
            pytest.skip("set ATLAS_TEST_REDIS_URL to run against Redis")
        return REDIS_URL
    return f"sqlite:///{tmp_path / 'queue.db'}"


def _worker_env(home, database_url, queue_url, queue_name, **extra):
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "ATLAS_HOME": str(home),
        "ATLAS_DATABASE_URL": database_url,
        "ATLAS_QUEUE_URL": queue_url,
        "ATLAS_QUEUE_NAME": queue_name,
        "ATLAS_AUTO_PROCESS": "false",
        "ATLAS_EXECUTION__LEASE_S": "3",
        "PYTHONPATH": path,
        **extra,
    }


def _start_worker(env, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import task_plugins; task_plugins.main()", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _stop(worker: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 60) -> str:
    worker.send_signal(sig)
    try:
        return worker.communicate(timeout=timeout_s)[0].decode()
    except subprocess.TimeoutExpired:
        worker.kill()
        return worker.communicate()[0].decode()


def _wait_marks(marks: Path, word: str, count: int = 1, timeout_s: float = 60) -> list[list[str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marks.exists():
            found = [line.split() for line in marks.read_text().splitlines()]
            found = [line for line in found if line[0] == word]
            if len(found) >= count:
                return found
        time.sleep(0.05)
    raise AssertionError(f"no {word!r} x{count} in {marks}")


def _run_logs(atlas, task_id):
    with atlas.engine.connect() as connection:
        return connection.execute(
            select(task_logs).where(task_logs.c.task_id == task_id).order_by(task_logs.c.id)
        ).all()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_the_task_of_a_killed_worker_process_runs_again_on_another(
    backend, make_settings, tmp_path, home, database_url
):
    queue_url = _queue_url(backend, tmp_path)
    queue_name = f"atlas-test-{uuid.uuid4().hex[:8]}"
    atlas = open_atlas(make_settings(queue_url=queue_url, queue_name=queue_name))
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    hold.touch()
    worker = _start_worker(_worker_env(home, database_url, queue_url, queue_name), "--workers", "2")
    try:
        task_id = atlas.dispatcher.submit(
            "test-hold", {"marks": str(marks), "hold_file": str(hold)}
        ).task_id
        [(_, pid, _)] = _wait_marks(marks, "start")
        os.kill(int(pid), signal.SIGKILL)
        killed_at = time.monotonic()
        [_, (_, second_pid, _)] = _wait_marks(marks, "start", count=2)
        rerun_after_s = time.monotonic() - killed_at
        hold.unlink()
        [outcome] = atlas.dispatcher.wait([task_id], timeout_s=60)
    finally:
        output = _stop(worker)
        atlas.dispatcher.queue.huey.flush()
    assert outcome.status == "completed", output
    assert second_pid != pid
    dead, rerun = _run_logs(atlas, task_id)
    assert (dead.status, dead.error_reason) == (
        "error",
        f"worker {socket.gethostname()}:{pid} stopped (lease expired)",
    )
    assert (rerun.status, rerun.retries) == ("completed", 1)
    print(f"{backend}: the killed worker's task ran again after {rerun_after_s:.1f} s")
    atlas.close()


@pytest.mark.parametrize("threads", [False, True])
def test_a_stopped_worker_finishes_within_its_grace_or_hands_the_task_back(
    threads, make_settings, tmp_path, home, database_url
):
    queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    queue_name = f"atlas-test-{uuid.uuid4().hex[:8]}"
    atlas = open_atlas(make_settings(queue_url=queue_url, queue_name=queue_name))
    mode = ["--threads"] if threads else []
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    params = {"marks": str(marks), "hold_file": str(hold)}

    # 1. Stopped while a short task runs: it finishes within the grace period.
    hold.touch()
    env = _worker_env(home, database_url, queue_url, queue_name, ATLAS_EXECUTION__STOP_GRACE_S="30")
    worker = _start_worker(env, "--workers", "1", *mode)
    short = atlas.dispatcher.submit("test-hold", params).task_id
    _wait_marks(marks, "start")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    hold.unlink()
    output = worker.communicate(timeout=60)[0].decode()
    assert worker.returncode == 0, output
    [log] = _run_logs(atlas, short)
    assert log.status == "completed", output

    # 2. Stopped while a long task runs: handed back, and the next worker runs it.
    hold.touch()
    env = _worker_env(home, database_url, queue_url, queue_name, ATLAS_EXECUTION__STOP_GRACE_S="1")
    worker = _start_worker(env, "--workers", "1", *mode)
    long = atlas.dispatcher.submit("test-hold", params).task_id
    _wait_marks(marks, "start", count=2)
    output = _stop(worker)
    assert worker.returncode == 0, output
    [handed] = _run_logs(atlas, long)
    assert (handed.status, handed.error_reason) == (
        "cancelled",
        "interrupted; handed back to the queue to run again",
    ), output
    assert atlas.dispatcher.outcome(long).status == "queued"
    if threads:
        assert "handed 1 running task(s) back" in output

    hold.unlink()
    worker = _start_worker(env, "--workers", "1", *mode)
    try:
        [outcome] = atlas.dispatcher.wait([long], timeout_s=60)
    finally:
        output = _stop(worker)
        atlas.dispatcher.queue.huey.flush()
    assert outcome.status == "completed", output
    assert [log.status for log in _run_logs(atlas, long)] == ["cancelled", "completed"]
    atlas.close()


def test_a_worker_whose_queue_is_unreachable_exits_with_one_line_and_changes_nothing(
    make_settings, tmp_path, home, database_url
):
    good = f"sqlite:///{tmp_path / 'queue.db'}"
    atlas = open_atlas(make_settings(queue_url=good))
    task_id = atlas.dispatcher.submit("test-hold", {"marks": "m", "hold_file": "h"}).task_id
    bad = "redis://127.0.0.1:1/0"
    worker = _start_worker(_worker_env(home, database_url, bad, "atlas"))
    output = worker.communicate(timeout=60)[0].decode()
    assert worker.returncode == 5, output
    [line] = output.strip().splitlines()
    assert line.startswith(f"atlas: the task queue at {bad} is not reachable")
    assert atlas.dispatcher.outcome(task_id).status == "queued"
    assert _run_logs(atlas, task_id) == []
    atlas.dispatcher.queue.huey.flush()
    atlas.close()


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_worker_lowers_its_cpu_priority_so_interactive_requests_come_first(
    tmp_path, home, database_url
):
    queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    worker = _start_worker(_worker_env(home, database_url, queue_url, "atlas"), "--nice", "7")
    try:
        assert worker.stdout is not None
        first = worker.stdout.readline().decode()  # printed once it runs
        assert first.startswith("atlas worker:"), first
        assert _niceness(worker.pid) == min(19, os.nice(0) + 7)
    finally:
        _stop(worker)


def test_a_worker_priority_outside_nice_range_is_refused_in_one_line(cli, tmp_path):
    queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    result = cli("worker", "--nice", "20", env={"ATLAS_QUEUE_URL": queue_url})
    assert result.exit_code != 0
    assert result.stderr.strip() == "atlas: --nice must be between 0 and 19"
