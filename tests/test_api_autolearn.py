"""The autolearn agent over HTTP: insights, recommendations applied as tasks, the schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from _api import events, make_client
from _feedback import add_item
from atlas.db import utcnow
from atlas.db.tables import media

TEXTS = [
    "A sheriff rides into a dusty frontier town to face an outlaw gang",
    "Astronauts aboard a starship explore a distant nebula",
    "A chef bakes bread and pastry in a busy kitchen",
]


@pytest.fixture
def client(atlas):
    with make_client(atlas) as opened:
        yield opened


def _unembedded_library(atlas) -> list[int]:
    ids = [add_item(atlas.engine, text.split()[1], description=text) for text in TEXTS]
    with atlas.engine.begin() as connection:  # in the library for longer than the grace period
        connection.execute(update(media).values(created_at=utcnow() - timedelta(hours=3)))
    return ids


@pytest.mark.usefixtures("embedding_model")
def test_a_recommendation_is_made_planned_applied_as_a_task_and_listed(atlas, client):
    ids = _unembedded_library(atlas)

    found = client.get("/api/v1/autolearn/insights", params={"kind": "coverage"})
    assert found.status_code == 200
    (gap,) = [i for i in found.json()["insights"] if i["key"] == "coverage:not-embedded"]
    assert gap["evidence"]["media_ids"] == ids

    made = client.post("/api/v1/autolearn/recommendations")
    assert made.status_code == 200
    (rec,) = [r for r in made.json()["recommendations"] if r["kind"] == "embed"]
    assert client.get(f"/api/v1/autolearn/recommendations/{rec['id']}").json()["id"] == rec["id"]

    plan = client.post(
        f"/api/v1/autolearn/recommendations/{rec['id']}/apply", json={"dry_run": True}
    )
    assert plan.status_code == 200
    assert plan.json()["plan"].startswith("queue embed tasks for 3 media items")
    assert plan.json()["recommendation"]["status"] == "new"  # a dry run changes nothing

    started = client.post(f"/api/v1/autolearn/recommendations/{rec['id']}/apply")
    assert started.status_code == 202
    task_id = started.json()["task_id"]
    assert events(client, f"/api/v1/tasks/{task_id}/events")[-1] == ("end", {})
    assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed"
    applied = client.get("/api/v1/autolearn/recommendations", params={"status": "applied"})
    assert [r["id"] for r in applied.json()["recommendations"]] == [rec["id"]]
    assert applied.json()["blocked"] == {}

    again = client.post(f"/api/v1/autolearn/recommendations/{rec['id']}/apply")
    assert again.status_code == 409
    assert "only a new recommendation can be applied" in again.json()["error"]


def test_dismiss_run_schedule_and_bad_input(atlas, client):
    _unembedded_library(atlas)
    (rec, *_) = client.post("/api/v1/autolearn/recommendations").json()["recommendations"]
    dismissed = client.post(
        f"/api/v1/autolearn/recommendations/{rec['id']}/dismiss", json={"reason": "not now"}
    )
    assert dismissed.status_code == 200
    assert dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["dismissed_reason"] == "not now"

    run = client.post("/api/v1/autolearn/run", json={"auto": False})
    assert run.status_code == 202
    assert events(client, f"/api/v1/tasks/{run.json()['task_id']}/events")[-1] == ("end", {})
    shown = client.get(f"/api/v1/tasks/{run.json()['task_id']}").json()
    assert shown["status"] == "completed" and shown["task_type"] == "autolearn-cycle"

    schedule = client.get("/api/v1/autolearn/schedule").json()
    assert schedule["jobs"] and all(0 <= hour < 24 for hour in schedule["quiet_hours"])

    assert client.post("/api/v1/autolearn/recommendations/999/apply").status_code == 404
    assert client.post("/api/v1/autolearn/recommendations/999/dismiss").status_code == 404
    assert client.get("/api/v1/autolearn/recommendations/2147483648").status_code == 422
    assert client.get("/api/v1/autolearn/insights", params={"kind": "nope"}).status_code == 422
    assert client.get("/api/v1/autolearn/insights", params={"days": 0}).status_code == 422
    bad = client.post("/api/v1/autolearn/run", json={"auto": "sometimes"})
    assert bad.status_code == 422 and "auto" in bad.json()["error"]
    extra = client.post(
        f"/api/v1/autolearn/recommendations/{rec['id']}/dismiss", json={"reason": "x", "more": 1}
    )
    assert extra.status_code == 422
