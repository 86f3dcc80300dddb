"""A real ``atlas worker`` process consumes a real Huey queue (SQLite and Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import select

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
