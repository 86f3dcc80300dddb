"""Rules, the feedback loop as a task, tasks with live events, analytics, over HTTP."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from _api import events, make_client
from _feedback import add_item, tag_new_item, tags_of
from atlas.db.tables import tasks


@pytest.fixture
def client(atlas):
    with make_client(atlas) as opened:
        yield opened


def _teach_scifi(client, atlas, count=4):
    """Over HTTP, the user replaces Atlas's 'sci-fi' by 'Science Fiction' on ``count`` items."""
    for n in range(count):
        item = add_item(atlas.engine, f"Taught {n}", auto=["sci-fi", f"extra{n}"])
        response = client.post(
            f"/api/v1/media/{item}/feedback", json={"tags": ["Science Fiction", f"extra{n}"]}
        )
        assert response.status_code == 200, response.text


@pytest.mark.small_feedback
def test_feedback_loop_runs_as_a_task_and_its_rule_can_be_switched_and_undone(atlas, client):
    _teach_scifi(client, atlas)

    dry = client.post("/api/v1/feedback-loop", json={"dry_run": True})
    assert dry.status_code == 202
    streamed = events(client, f"/api/v1/tasks/{dry.json()['task_id']}/events")
    assert streamed[-1] == ("end", {})
    final = streamed[-2][1]
    assert final["status"] == "completed" and final["result"]["dry_run"] is True
    assert client.get("/api/v1/rules").json() == []  # a dry run changes nothing

    started = client.post("/api/v1/feedback-loop", json={})
    task_id = started.json()["task_id"]
    assert started.json()["status"] == "queued"
    kinds = [kind for kind, _ in events(client, f"/api/v1/tasks/{task_id}/events")]
    assert kinds[-1] == "end"
    shown = client.get(f"/api/v1/tasks/{task_id}").json()
    assert shown["status"] == "completed" and shown["task_type"] == "feedback-loop"
    assert [run["status"] for run in shown["runs"]] == ["completed"]

    rules = client.get("/api/v1/rules").json()
    (rule,) = [rule for rule in rules if rule["rule_type"] == "tag_mapping"]
    assert rule["enabled"] is True
    assert rule["support"] == 4
    assert client.get(f"/api/v1/rules/{rule['id']}").json()["id"] == rule["id"]

    # The rule acts on the next prediction; undoing that application restores the tag.
    item = add_item(atlas.engine, "New one")
    applied = tag_new_item(atlas.engine, item, ["sci-fi"])
    (application,) = applied.applications
    assert tags_of(atlas.engine, item) == {"Science Fiction": "rule"}
    listed = client.get("/api/v1/rules/applications", params={"media_id": item}).json()
    assert [a["id"] for a in listed] == [application.id]
    undone = client.post(f"/api/v1/rules/applications/{application.id}/undo")
    assert undone.status_code == 200, undone.text
    assert tags_of(atlas.engine, item) == {"sci-fi": "user"}
    again = client.post(f"/api/v1/rules/applications/{application.id}/undo")
    assert again.status_code == 409

    off = client.post(f"/api/v1/rules/{rule['id']}/disable", json={"reason": "not mine"})
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert off.json()["disabled_reason"] == "not mine"
    on = client.post(f"/api/v1/rules/{rule['id']}/enable")
    assert on.json()["enabled"] is True


def test_tasks_list_show_cancel_and_start(atlas, client):
    item = add_item(atlas.engine, "Alien")
    started = client.post("/api/v1/tasks", json={"task_type": "tag", "media_ids": [item]})
    assert started.status_code == 202
    task_id = started.json()["task_id"]
    final = events(client, f"/api/v1/tasks/{task_id}/events")[-2][1]
    assert final["task_type"] == "tag" and final["status"] in ("completed", "error")

    listed = client.get("/api/v1/tasks", params={"type": "tag"}).json()
    assert [task["id"] for task in listed] == [task_id]
    assert client.get("/api/v1/tasks", params={"status": "cancelled"}).json() == []
    finished = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert finished.status_code == 422
    assert finished.json()["error"] == f"task {task_id} has already finished ({final['status']})"
    assert client.get("/api/v1/tasks/999").status_code == 404
    assert client.get("/api/v1/tasks/999/events").status_code == 404


def test_analytics_reports_every_view_of_the_task_logs(atlas, client):
    item = add_item(atlas.engine, "Alien")
    task_id = client.post("/api/v1/tasks", json={"task_type": "tag", "media_ids": [item]}).json()[
        "task_id"
    ]
    events(client, f"/api/v1/tasks/{task_id}/events")
    summary = client.get("/api/v1/analytics/summary").json()
    assert summary["nothing_recorded"] is False and "tag" in summary["by_type"]
    assert summary["by_type"]["tag"]["runs"] == 1
    trends = client.get("/api/v1/analytics/trends", params={"days": 3}).json()
    assert trends["days"] == 3 and trends["overall"]["runs"] == 1
    slow = client.get("/api/v1/analytics/bottlenecks", params={"threshold_ms": 1}).json()
    assert slow["nothing_recorded"] is False
    only = client.get("/api/v1/analytics/summary", params={"type": "tag"}).json()
    assert set(only["by_type"]) <= {"tag"}
    page = client.get("/analytics")
    assert page.status_code == 200
    table = page.text[page.text.index('id="bottlenecks"') :]
    assert "<td>tag" in table and "Longest runs" in table


def test_a_started_task_runs_in_the_background_and_a_running_one_can_be_cancelled(
    atlas, client, tmp_path
):
    import task_plugins  # noqa: F401  (registers test-hold)

    marks, hold = tmp_path / "marks", tmp_path / "hold"
    hold.touch()
    started = atlas.dispatcher.start("test-hold", {"marks": str(marks), "hold_file": str(hold)})
    assert started.status == "queued"  # answered before the task ran
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/tasks/{started.task_id}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stopping = client.post(f"/api/v1/tasks/{started.task_id}/cancel")
    assert stopping.status_code == 200 and stopping.json()["status"] == "running"
    final = events(client, f"/api/v1/tasks/{started.task_id}/events")[-2][1]
    assert final["status"] == "cancelled"
    assert hold.exists()  # it stopped because it was cancelled, not because it was let go


def test_closing_waits_for_a_task_running_in_the_background_then_gives_up(atlas, tmp_path):
    import task_plugins  # noqa: F401  (registers test-hold)

    marks, hold = tmp_path / "marks", tmp_path / "hold"
    hold.touch()
    started = atlas.dispatcher.start("test-hold", {"marks": str(marks), "hold_file": str(hold)})
    deadline = time.monotonic() + 30
    while not marks.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Still held: closing gives up after its bound and leaves the task to its lease.
    atlas.dispatcher.close(wait_s=0.2)
    assert "end" not in marks.read_text()
    # Let go while a close waits: the close returns once the task has finished.
    threading.Timer(0.3, hold.unlink).start()
    atlas.dispatcher.close(wait_s=30)
    assert "end" in marks.read_text()
    with atlas.engine.connect() as connection:
        status = connection.scalar(select(tasks.c.status).where(tasks.c.id == started.task_id))
    assert status == "completed"
