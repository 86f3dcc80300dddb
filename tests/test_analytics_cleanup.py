"""Retention: old task_logs rows go, once folded; trends and user feedback stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from analytics_support import NOW, insert_runs, many, run
from atlas.analytics import (
    CLEANUP_TASK,
    cleanup_task_logs,
    fold_task_logs,
    run_cleanup,
    task_trends,
)
from atlas.db import utcnow
from atlas.db.tables import task_logs, user_feedback
from atlas.errors import InvalidInput, Unavailable


def cleanup(atlas, **kwargs):
    return cleanup_task_logs(atlas.engine, atlas.settings.analytics, now=NOW, **kwargs)


def count_logs(atlas, *conditions):
    with atlas.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(task_logs).where(*conditions))


def old_and_new(atlas):
    insert_runs(
        atlas.engine,
        *many(3, task_type="ingest", ago=timedelta(days=40)),
        run("tag", "error", 50, ago=timedelta(days=35), error="x"),
        *many(2, task_type="ingest", ago=timedelta(days=2)),
    )


def test_cleanup_deletes_only_rows_older_than_keep_days_and_trends_survive(atlas):
    old_and_new(atlas)
    before = task_trends(atlas.engine, atlas.settings.analytics, days=60, now=NOW)

    report = cleanup(atlas, keep_days=30)

    assert (report.deleted, report.by_type) == (4, {"ingest": 3, "tag": 1})
    assert report.remaining == 2 and report.kept == 0 and not report.dry_run
    assert count_logs(atlas) == 2
    assert count_logs(atlas, task_logs.c.created_at < NOW - timedelta(days=30)) == 0
    after = task_trends(atlas.engine, atlas.settings.analytics, days=60, now=NOW)
    assert after.to_dict()["by_type"] == before.to_dict()["by_type"]
    assert cleanup(atlas, keep_days=30).deleted == 0  # idempotent


def test_cleanup_folds_rows_it_has_not_folded_yet_before_deleting_them(atlas):
    old_and_new(atlas)
    report = cleanup(atlas, keep_days=30)
    assert report.folded == 6
    trend = task_trends(atlas.engine, atlas.settings.analytics, days=60, now=NOW)
    assert trend.overall.runs == 6


def test_cleanup_never_touches_user_feedback(atlas):
    old_and_new(atlas)
    with atlas.engine.begin() as connection:
        connection.execute(
            insert(user_feedback),
            [
                {
                    "media_id": 1,
                    "feedback_type": "rating",
                    "corrected_value": "4",
                    "timestamp": NOW - timedelta(days=400),
                },
                {
                    "media_id": 2,
                    "feedback_type": "tag_correction",
                    "corrected_value": "drama",
                    "timestamp": NOW,
                },
            ],
        )
    cleanup(atlas, keep_days=1)
    with atlas.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(user_feedback)) == 2


def test_dry_run_counts_what_would_go_and_changes_nothing(atlas):
    old_and_new(atlas)
    report = cleanup(atlas, keep_days=30, dry_run=True)
    assert report.dry_run and report.deleted == 4
    assert report.by_type == {"ingest": 3, "tag": 1}
    assert report.folded == 6  # nothing folded yet: a real cleanup would fold these first
    assert count_logs(atlas) == 6
    assert fold_task_logs(atlas.engine, atlas.settings.analytics, now=NOW).folded == 6


def test_cleanup_keeps_runs_in_progress_and_the_newest_row(atlas):
    insert_runs(
        atlas.engine,
        *many(2, ago=timedelta(days=40)),
        run(status="running", ago=timedelta(hours=2)),
    )
    # Everything is older than 1 minute, but the running row is not folded yet.
    report = cleanup_task_logs(
        atlas.engine,
        atlas.settings.analytics,
        keep_days=1,
        now=NOW + timedelta(hours=22),
    )
    assert report.deleted == 2 and count_logs(atlas) == 1

    insert_runs(atlas.engine, run(ago=timedelta(days=39)))  # newest id, old time
    report = cleanup(atlas, keep_days=30)
    assert report.deleted == 0 and report.kept == 1


def test_new_runs_after_a_cleanup_emptied_the_old_rows_are_still_folded(atlas):
    insert_runs(atlas.engine, *many(3, ago=timedelta(days=40)))
    cleanup(atlas, keep_days=30)
    insert_runs(atlas.engine, *many(2))
    report = fold_task_logs(atlas.engine, atlas.settings.analytics, now=NOW)
    assert report.folded == 2
    trend = task_trends(atlas.engine, atlas.settings.analytics, days=60, now=NOW)
    assert trend.overall.runs == 5


def test_cleanup_in_batches_deletes_every_old_row(atlas):
    insert_runs(atlas.engine, *many(7, ago=timedelta(days=40)), run())
    report = cleanup(atlas, keep_days=30, batch_rows=2)
    assert report.deleted == 7 and count_logs(atlas) == 1


@pytest.mark.parametrize("keep_days", [0, -3])
def test_keep_days_below_one_is_refused(atlas, keep_days):
    with pytest.raises(InvalidInput, match=r"`keep_days` must be at least 1"):
        cleanup(atlas, keep_days=keep_days)
    with pytest.raises(InvalidInput, match=r"`keep_days` must be at least 1"):
        run_cleanup(atlas.dispatcher, keep_days=keep_days)
    assert count_logs(atlas) == 0  # no task was even recorded


def test_keep_days_defaults_to_the_retention_setting(make_settings):
    from atlas.app import open_atlas

    atlas = open_atlas(make_settings(analytics={"retention_days": 3}))
    try:
        insert_runs(atlas.engine, run(ago=timedelta(days=4)), run(ago=timedelta(days=2)))
        report = cleanup(atlas)
        assert report.keep_days == 3 and report.deleted == 1
    finally:
        atlas.close()


def test_cleanup_through_the_dispatcher_is_a_logged_task(atlas):
    now = utcnow()  # the task runs at the real time
    insert_runs(
        atlas.engine,
        *many(2, at=now - timedelta(days=400)),
        run(at=now - timedelta(minutes=1)),
    )
    report = run_cleanup(atlas.dispatcher, keep_days=30)
    assert report.deleted == 2
    with atlas.engine.connect() as connection:
        logged = (
            connection.execute(
                select(task_logs.c.status).where(task_logs.c.task_type == CLEANUP_TASK)
            )
            .scalars()
            .all()
        )
    assert logged == ["completed"]


def test_cleanup_with_a_queue_and_no_worker_says_so_after_waiting(make_settings, tmp_path):
    from atlas.app import open_atlas

    queued = open_atlas(make_settings(queue_url=f"sqlite:///{tmp_path / 'queue.db'}"))
    try:
        with pytest.raises(Unavailable, match=r"is still queued; is `atlas worker` running\?"):
            run_cleanup(queued.dispatcher, keep_days=30, wait_timeout_s=0.3)
    finally:
        queued.close()
