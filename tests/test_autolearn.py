"""The autolearn agent: insights with evidence, recommendations applied as tasks and judged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from tests._feedback import add_item

from atlas.autolearn import (
    apply_recommendation,
    collect_insights,
    dismiss_recommendation,
    list_recommendations,
    run_autolearn,
)
from atlas.db import utcnow
from atlas.db.tables import autolearn_recommendations, media, task_logs
from atlas.errors import Conflict, InvalidInput, NotFound

TEXTS = [
    "A sheriff rides into a dusty frontier town to face an outlaw gang",
    "Astronauts aboard a starship explore a distant nebula",
    "A chef bakes bread and pastry in a busy kitchen",
    "Divers swim over a coral reef with turtles and sharks",
]


def _library(atlas, count: int = 4) -> list[int]:
    ids = [
        add_item(atlas.engine, TEXTS[i % 4].split()[1], description=TEXTS[i % 4], auto=["story"])
        for i in range(count)
    ]
    with atlas.engine.begin() as connection:  # in the library for longer than the grace period
        connection.execute(update(media).values(created_at=utcnow() - timedelta(hours=3)))
    return ids


def _embed(atlas, ids):
    from atlas.embeddings import embed_media

    embed_media(atlas.dispatcher, media_ids=ids)


@pytest.mark.usefixtures("embedding_model")
def test_missing_vectors_are_found_applied_as_a_task_and_judged_kept(atlas):
    ids = _library(atlas)
    _embed(atlas, ids[:2])
    report = collect_insights(atlas.settings, atlas.engine)
    gap = next(i for i in report.insights if i.key == "coverage:not-embedded")
    assert gap.evidence["count"] == 2 and gap.evidence["media_ids"] == ids[2:]

    first = run_autolearn(atlas.dispatcher)
    assert "coverage:not-embedded" in first["new_insights"]
    (rec,) = [r for r in list_recommendations(atlas.engine) if r.kind == "embed"]
    assert rec.safe and rec.baseline == 2
    plan = apply_recommendation(atlas.dispatcher, rec.id, dry_run=True)
    assert plan.plan == f"queue embed tasks for 2 media items ({ids[2]}, {ids[3]})"
    assert list_recommendations(atlas.engine)[0].status == "new"  # a dry run changes nothing

    applied = apply_recommendation(atlas.dispatcher, rec.id)
    assert applied.recommendation.status == "applied" and applied.follow_up_task_ids
    with atlas.engine.connect() as connection:
        logged = connection.scalar(
            select(func.count()).where(task_logs.c.task_type == "autolearn-apply")
        )
    assert logged == 1
    with pytest.raises(Conflict, match="is applied"):
        apply_recommendation(atlas.dispatcher, rec.id)

    second = run_autolearn(atlas.dispatcher)
    assert "coverage:not-embedded" in second["resolved_insights"]
    assert [(j["id"], j["verdict"]) for j in second["judged"]] == [(rec.id, "kept")]
    third = run_autolearn(atlas.dispatcher)
    assert third["recommendations"]["made"] == [] and third["judged"] == []


def test_a_recommendation_whose_data_changed_is_refused_and_superseded(atlas):
    ids = _library(atlas, 3)
    run_autolearn(atlas.dispatcher)
    rec = next(r for r in list_recommendations(atlas.engine) if r.kind == "embed")
    assert rec.action["params"]["media_ids"] == ids
    _library(atlas, 1)  # another item arrives: the gap it was made for changed
    with pytest.raises(Conflict, match="out of date"):
        apply_recommendation(atlas.dispatcher, rec.id)
    with atlas.engine.connect() as connection:
        status = connection.scalar(
            select(autolearn_recommendations.c.status).where(
                autolearn_recommendations.c.id == rec.id
            )
        )
    assert status == "superseded"
    made = run_autolearn(atlas.dispatcher)["recommendations"]["made"]
    assert made, "the next run makes it again from the new data"


def test_dismissed_and_unknown_recommendations_are_refused(atlas, cli):
    _library(atlas, 2)
    run_autolearn(atlas.dispatcher)
    rec = list_recommendations(atlas.engine)[0]
    dismissed = dismiss_recommendation(atlas.engine, rec.id, "not now")
    assert dismissed.status == "dismissed" and dismissed.dismissed_reason == "not now"
    with pytest.raises(Conflict, match="dismissed"):
        apply_recommendation(atlas.dispatcher, rec.id)
    with pytest.raises(NotFound):
        apply_recommendation(atlas.dispatcher, 999)
    # A dismissed recommendation is not made again while its data is the same.
    assert rec.id not in run_autolearn(atlas.dispatcher)["recommendations"]["made"]
    result = cli("autolearn", "apply", "999")
    assert result.exit_code == 3 and result.stderr.strip() == "atlas: no recommendation with id 999"
    result = cli("autolearn", "apply", str(rec.id))
    assert result.exit_code == 4 and "only a new recommendation can be applied" in result.stderr
    result = cli("autolearn", "insights", "--kind", "nope")
    assert result.exit_code == 2 and "unknown insight kind 'nope'" in result.stderr
    with pytest.raises(InvalidInput):
        collect_insights(atlas.settings, atlas.engine, days=0)


def test_a_type_failing_with_one_reason_is_an_insight_and_a_healthy_one_is_not(atlas):
    from tests.analytics_support import insert_runs, run

    now = utcnow()
    rows = [
        run(
            "probe",
            "error" if i % 3 == 0 else "completed",
            100,
            at=now - timedelta(hours=i % 20 + 1),
            error=f"ffprobe failed on '/lib/f{i}.mkv' (exit 1)",
        )
        for i in range(60)
    ] + [run("tag", "completed", 100, at=now - timedelta(hours=i % 20 + 1)) for i in range(60)]
    insert_runs(atlas.engine, *rows)
    keys = {i.key for i in collect_insights(atlas.settings, atlas.engine, now=now).insights}
    assert "reliability:recurring-failure:probe" in keys
    assert not any(key.endswith(":tag") for key in keys)


def test_autolearn_commands_print_a_report(atlas, cli):
    _library(atlas, 2)
    result = cli("autolearn", "run")
    assert result.exit_code == 0 and "first run" in result.stdout
    result = cli("autolearn", "recommend")
    assert result.exit_code == 0 and "plan: queue embed tasks for 2 media items" in result.stdout
    result = cli("autolearn", "history")
    assert result.exit_code == 0


def test_retries_that_never_help_are_lowered_for_new_processes(atlas, settings):
    from tests.analytics_support import insert_runs, run

    from atlas.app import open_atlas

    now = utcnow()
    rows = [
        run("tag", "error", 300, at=now - timedelta(hours=i + 1), retries=1, error="bad input")
        for i in range(8)
    ] + [run("tag", "completed", 100, at=now - timedelta(hours=i + 1)) for i in range(30)]
    insert_runs(atlas.engine, *rows)
    run_autolearn(atlas.dispatcher)
    rec = next(r for r in list_recommendations(atlas.engine) if r.kind == "set-retries")
    assert rec.action["params"] == {"task_type": "tag", "retries": 0}
    assert rec.insight["evidence"]["retried_and_failed"] == 8
    apply_recommendation(atlas.dispatcher, rec.id)
    reopened = open_atlas(settings)
    try:
        assert reopened.settings.task_policy("tag").retries == 0
    finally:
        reopened.close()
    # What the user set in the settings wins over what was learned.
    from atlas.config import TaskPolicy

    mine = settings.model_copy(update={"tasks": {"tag": TaskPolicy(retries=3)}})
    reopened = open_atlas(mine)
    try:
        assert reopened.settings.task_policy("tag").retries == 3
    finally:
        reopened.close()


def test_the_learned_schedule_avoids_busy_hours_and_a_worker_runs_it_once_a_day(atlas):
    from atlas.autolearn import clear_schedule, learn_schedule, show_schedule
    from atlas.tasks.queue import TaskQueue
    from atlas.tasks.worker import DailyJob, run_daily_job

    ids = _library(atlas, 60)
    with atlas.engine.begin() as connection:
        for index, media_id in enumerate(ids):  # everything arrives 01-04 h
            moment = utcnow().replace(hour=1 + index % 4, minute=5) - timedelta(days=1 + index % 9)
            connection.execute(
                update(media).where(media.c.id == media_id).values(created_at=moment)
            )
    assert show_schedule(atlas.settings, atlas.engine, queued=False).source == "default"
    schedule = learn_schedule(atlas.settings, atlas.engine, queued=False)
    assert not set(schedule.quiet_hours) & {1, 2, 3, 4}
    assert [job.name for job in schedule.jobs] == [
        "autolearn-cycle",
        "feedback-loop",
        "analytics-cleanup",
    ]
    shown = show_schedule(atlas.settings, atlas.engine, queued=False)
    assert shown.source == "learned" and shown.quiet_hours == schedule.quiet_hours

    job = DailyJob("autolearn-cycle", "autolearn-cycle", schedule.jobs[0].hour, 0, {"auto": True})
    queue_settings = atlas.settings.model_copy(update={"queue_url": "sqlite"})
    queue = TaskQueue(queue_settings, lambda task_id: None)
    queue.add_daily(job.name, job.hour, job.minute, lambda: None)
    (periodic_type,) = list(queue.huey._registry._periodic_tasks)
    periodic = periodic_type()
    at = utcnow().replace(hour=job.hour, minute=0, tzinfo=None)
    assert periodic.validate_datetime(at)
    assert not periodic.validate_datetime(at.replace(hour=(job.hour + 1) % 24))

    first = run_daily_job(atlas.dispatcher, job)
    assert first is not None and first.ok
    assert run_daily_job(atlas.dispatcher, job) is None  # another worker fired it too
    assert clear_schedule(atlas.engine) and not clear_schedule(atlas.engine)


def test_two_applies_of_one_recommendation_at_once_apply_it_once(atlas, settings):
    import threading

    from tests.analytics_support import insert_runs, run

    from atlas.app import open_atlas

    now = utcnow()
    insert_runs(
        atlas.engine,
        *[
            run("tag", "error", 300, at=now - timedelta(hours=i + 1), retries=2, error="bad")
            for i in range(6)
        ],
    )
    run_autolearn(atlas.dispatcher)
    rec = next(r for r in list_recommendations(atlas.engine) if r.kind == "set-retries")
    results: list[str] = []
    barrier = threading.Barrier(2)

    def apply() -> None:
        opened = open_atlas(settings)
        try:
            barrier.wait()
            apply_recommendation(opened.dispatcher, rec.id)
            results.append("applied")
        except Conflict as exc:
            results.append(f"refused: {exc}")
        finally:
            opened.close()

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.split(":")[0] for r in results) == ["applied", "refused"]
    with atlas.engine.connect() as connection:
        applied = connection.scalar(
            select(func.count()).where(
                autolearn_recommendations.c.status == "applied",
                autolearn_recommendations.c.id == rec.id,
            )
        )
        runs = (
            connection.execute(
                select(task_logs.c.status).where(task_logs.c.task_type == "autolearn-apply")
            )
            .scalars()
            .all()
        )
    assert applied == 1 and sorted(runs) == ["completed", "error"]


def test_clusters_that_grew_split_or_appeared_are_reported_against_the_last_run():
    from atlas.autolearn.clusters import detect_cluster_insights

    def snap(made: str, groups: dict[str, list[int]]) -> dict:
        return {
            "model": "m",
            "made": made,
            "clusters": [
                {"cluster": i, "name": name, "members": members}
                for i, (name, members) in enumerate(groups.items())
            ],
        }

    before = snap("1", {"space": list(range(20)), "ocean": list(range(100, 110))})
    same = snap("2", {"space": list(range(20)), "ocean": list(range(100, 110))})
    assert detect_cluster_insights(before, same) == []
    assert detect_cluster_insights(None, same) == []
    after = snap(
        "2",
        {
            "space": list(range(12)),
            "robots": list(range(12, 20)),
            "ocean": list(range(100, 125)),
            "cooking": list(range(200, 215)),
        },
    )
    (insight,) = detect_cluster_insights(before, after)
    changes = {(c["change"], c["cluster"]) for c in insight.evidence["changes"]}
    assert changes == {("split", "space"), ("grew", "ocean"), ("appeared", "cooking")}


def test_hours_when_tasks_crowd_and_slow_down_are_a_schedule_insight(atlas):
    from tests.analytics_support import insert_runs, run

    now = utcnow().replace(hour=23, minute=30)
    quiet = [
        run("tag", "completed", 100, at=(now - timedelta(days=d)).replace(hour=h))
        for d in range(1, 4)
        for h in range(24)
        if h != 20
    ]
    crowded = [
        run(
            "tag",
            "completed",
            400,
            at=(now - timedelta(days=1 + i % 3)).replace(hour=20, minute=i % 60),
        )
        for i in range(40)
    ]
    insert_runs(atlas.engine, *quiet)
    report = collect_insights(atlas.settings, atlas.engine, now=now)
    assert "schedule:slow-hours" not in {i.key for i in report.insights}
    insert_runs(atlas.engine, *crowded)
    report = collect_insights(atlas.settings, atlas.engine, now=now)
    (slow,) = [i for i in report.insights if i.key == "schedule:slow-hours"]
    assert slow.evidence["slow_hours"] == [20]


def test_a_kind_whose_applied_recommendations_keep_failing_stops_being_proposed(atlas):
    from sqlalchemy import insert

    _library(atlas, 2)
    now = utcnow()
    with atlas.engine.begin() as connection:
        for verdict in ("failed", "failed", "kept"):
            connection.execute(
                insert(autolearn_recommendations).values(
                    kind="embed",
                    status="applied",
                    insight_key="coverage:not-embedded",
                    insight={},
                    statement="old",
                    action={"kind": "embed", "params": {}, "describe": ""},
                    metric="media without a vector",
                    data_key="old",
                    created_at=now,
                    updated_at=now,
                    verdict=verdict,
                )
            )
    report = run_autolearn(atlas.dispatcher)
    assert report["recommendations"]["made"] == []
    assert report["recommendations"]["blocked"] == {
        "embed": "2 of 3 applied embed recommendations did not move their metric"
    }
    assert "coverage:not-embedded" in {i["key"] for i in report["insights"]}


@pytest.mark.usefixtures("embedding_model")
def test_run_auto_applies_only_the_safe_recommendations(atlas):
    from tests.analytics_support import insert_runs, run

    from atlas.autolearn import list_recommendations as recs_of

    ids = _library(atlas, 3)
    _embed(atlas, ids[:1])
    now = utcnow()
    insert_runs(  # retries that never help: lowering them is not for the automatic cycle
        atlas.engine,
        *[
            run("tag", "error", 300, at=now - timedelta(hours=i + 1), retries=1, error="bad")
            for i in range(6)
        ],
    )
    report = run_autolearn(atlas.dispatcher, auto=True)
    applied = [a["recommendation_id"] for a in report["auto_applied"]]
    kinds = {r.id: r.kind for r in recs_of(atlas.engine, statuses=("applied", "new"))}
    assert applied and all(kinds[rec_id] == "embed" for rec_id in applied)
    assert [r.kind for r in recs_of(atlas.engine, statuses=("new",))] == ["set-retries"]
    after = run_autolearn(atlas.dispatcher)
    assert "coverage:not-embedded" in after["resolved_insights"]
    assert {j["verdict"] for j in after["judged"]} == {"kept"}


def test_a_tag_kind_the_user_nearly_always_removes_is_a_learning_insight(atlas):
    from atlas.feedback import track_tag_edits

    for index in range(32):
        media_id = add_item(atlas.engine, f"Film {index}", auto=[f"theme{index}"], user=["mine"])
        track_tag_edits(atlas.engine, atlas.settings.feedback, media_id, tags=["mine"])
    report = collect_insights(atlas.settings, atlas.engine, kind="learning")
    (removed,) = [i for i in report.insights if i.key == "learning:removed-kind:topic"]
    assert removed.evidence["reviewed"] == 32 and removed.evidence["kept"] == 0
    assert removed.severity == "warning"  # 50 reviews are needed before a cut-off is learned


def test_transcriptions_that_time_out_are_offered_a_smaller_model(atlas):
    from sqlalchemy import insert
    from tests.analytics_support import insert_runs, run

    from atlas.db.tables import tasks

    ids = _library(atlas, 4)
    now = utcnow()
    rows = []
    with atlas.engine.begin() as connection:
        for index in range(40):
            failed = index % 4 == 0
            task_id = connection.execute(
                insert(tasks)
                .values(
                    task_type="transcribe",
                    status="error" if failed else "completed",
                    params={"media_ids": [ids[(index // 4) % 2]] if failed else [ids[2]]},
                    created_at=now,
                )
                .returning(tasks.c.id)
            ).scalar_one()
            rows.append(
                run(
                    "transcribe",
                    "error" if failed else "completed",
                    600_000 if failed else 20_000,
                    at=now - timedelta(hours=index % 20 + 1),
                    task_id=task_id,
                    error=f"whisper timed out after 600 s on '/lib/long{index}.mkv'",
                )
            )
    insert_runs(atlas.engine, *rows)
    run_autolearn(atlas.dispatcher)
    (rec,) = [r for r in list_recommendations(atlas.engine) if r.kind == "transcribe-smaller"]
    assert sorted(rec.action["params"]["media_ids"]) == sorted(ids[:2])
    plan = apply_recommendation(atlas.dispatcher, rec.id, dry_run=True).plan
    assert plan.startswith("transcribe 2 media items again with the fast (smaller) Whisper model")
