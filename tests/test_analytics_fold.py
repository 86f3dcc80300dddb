"""Daily summaries: folded incrementally by watermark, once per run, whatever happens."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from analytics_support import NOW, insert_runs, many, run
from atlas.analytics import fold_task_logs, read_daily_summaries
from atlas.analytics.histogram import add_count, bucket_of
from atlas.db.tables import task_log_daily, task_log_fold_state, task_logs

TODAY = NOW.date()


def fold(atlas, **kwargs):
    return fold_task_logs(atlas.engine, atlas.settings.analytics, now=NOW, **kwargs)


def daily(atlas, task_type=None):
    with atlas.engine.connect() as connection:
        return {
            (s.day, s.task_type): s
            for s in read_daily_summaries(connection, date(2000, 1, 1), date(2100, 1, 1), task_type)
        }


def test_fold_sums_runs_into_one_row_per_utc_day_and_type(atlas):
    late = datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC)
    insert_runs(
        atlas.engine,
        run("ingest", duration_ms=100, at=late, retries=1, queue_wait_ms=40),
        run("ingest", "error", 300, at=late + timedelta(seconds=2), error="x", retries=2),
        run("ingest", "cancelled", 9000, at=late + timedelta(seconds=3), queue_wait_ms=10),
        run("tag", duration_ms=0, at=late + timedelta(seconds=4)),
    )
    report = fold(atlas)
    assert report.folded == 4 and report.pending == 0

    rows = daily(atlas)
    assert set(rows) == {(date(2026, 3, 14), "ingest"), (TODAY, "ingest"), (TODAY, "tag")}
    before = rows[(date(2026, 3, 14), "ingest")]
    assert (before.runs, before.completed, before.retries, before.retried_runs) == (1, 1, 1, 1)
    after = rows[(TODAY, "ingest")]
    assert (after.runs, after.failed, after.cancelled, after.retries) == (2, 1, 1, 2)
    # Cancelled runs count as runs but not in the durations.
    assert (after.duration_count, after.duration_sum_ms, after.duration_max_ms) == (1, 300, 300)
    assert after.duration_histogram == [0] * bucket_of(300) + [1]
    assert (after.queued_runs, after.queue_wait_sum_ms, after.queue_wait_max_ms) == (1, 10, 10)
    assert rows[(TODAY, "tag")].duration_histogram == [1]


def test_folding_again_adds_only_new_rows_and_never_counts_one_twice(atlas):
    insert_runs(atlas.engine, *many(3))
    assert fold(atlas).folded == 3
    assert fold(atlas).folded == 0
    insert_runs(atlas.engine, *many(2, duration_ms=500))
    report = fold(atlas)
    assert report.folded == 2
    summary = daily(atlas)[(TODAY, "ingest")]
    assert summary.runs == 5 and summary.duration_sum_ms == 3 * 100 + 2 * 500
    with atlas.engine.connect() as connection:
        watermark = connection.scalar(select(task_log_fold_state.c.folded_through_id))
        assert watermark == connection.scalar(
            select(task_logs.c.id).order_by(task_logs.c.id.desc()).limit(1)
        )


def test_a_run_still_running_is_folded_once_when_it_finishes(atlas):
    (running_id,) = insert_runs(atlas.engine, run(status="running", ago=timedelta(minutes=5)))
    insert_runs(atlas.engine, *many(2))
    report = fold(atlas)
    assert report.folded == 2 and report.pending == 1
    assert daily(atlas)[(TODAY, "ingest")].runs == 2

    with atlas.engine.begin() as connection:
        connection.execute(
            update(task_logs)
            .where(task_logs.c.id == running_id)
            .values(status="completed", duration_ms=700)
        )
    report = fold(atlas)
    assert report.folded == 1 and report.pending == 0
    summary = daily(atlas)[(TODAY, "ingest")]
    assert summary.runs == 3 and summary.completed == 3 and summary.duration_max_ms == 700
    assert fold(atlas).folded == 0


def test_a_run_running_past_the_stale_limit_is_folded_as_unfinished(atlas):
    insert_runs(
        atlas.engine,
        run(status="running", ago=timedelta(hours=25)),
        run(status="running", ago=timedelta(hours=2)),
    )
    report = fold(atlas)
    assert report.folded == 1 and report.pending == 1
    yesterday = daily(atlas)[(TODAY - timedelta(days=1), "ingest")]
    assert yesterday.unfinished == 1 and yesterday.completed == 0
    # Later, the second one goes stale too.
    later = fold_task_logs(atlas.engine, atlas.settings.analytics, now=NOW + timedelta(days=1))
    assert later.folded == 1 and later.pending == 0
    assert daily(atlas)[(TODAY, "ingest")].unfinished == 1


def test_folding_in_small_batches_gives_the_same_summaries(atlas, make_settings):
    rows = [
        run(t, s, d, ago=timedelta(hours=h))
        for h, (t, s, d) in enumerate(
            [("ingest", "completed", 10), ("tag", "error", 20), ("ingest", "completed", 30)] * 4
        )
    ]
    insert_runs(atlas.engine, *reversed(rows))
    report = fold(atlas, batch_rows=5)
    assert report.folded == 12
    batched = daily(atlas)
    with atlas.engine.begin() as connection:
        connection.execute(task_log_daily.delete())
        connection.execute(update(task_log_fold_state).values(folded_through_id=0))
    assert fold(atlas).folded == 12
    assert daily(atlas) == batched


def test_concurrent_folds_count_every_row_exactly_once(atlas):
    insert_runs(atlas.engine, *many(200))
    errors = []

    def worker():
        try:
            fold(atlas, batch_rows=7)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert daily(atlas)[(TODAY, "ingest")].runs == 200


def test_the_database_buckets_durations_as_the_python_rule_does(atlas):
    durations = [0, 1, 2, 3, 7, 8, 9, 100, 128, 1000, 1024, 4095, 4096, 65_536, 3_600_000]
    insert_runs(atlas.engine, *(run(duration_ms=d) for d in durations))
    fold(atlas)
    histogram = daily(atlas)[(TODAY, "ingest")].duration_histogram
    expected: list[int] = []
    for duration in durations:
        add_count(expected, bucket_of(duration), 1)
    assert histogram == expected


def test_rows_that_vanish_while_pending_are_dropped(atlas):
    ids = insert_runs(atlas.engine, run(status="running", ago=timedelta(minutes=1)), run())
    assert fold(atlas).pending == 1
    with atlas.engine.begin() as connection:
        connection.execute(task_logs.delete().where(task_logs.c.id == ids[0]))
    assert fold(atlas).pending == 0


def test_after_the_newest_rows_were_deleted_by_hand_the_watermark_steps_back(atlas):
    # SQLite hands out the ids of deleted last rows again; a fold that sees the
    # table end below its watermark moves the watermark back so they get folded.
    ids = insert_runs(atlas.engine, *many(3))
    fold(atlas)
    with atlas.engine.begin() as connection:
        connection.execute(task_logs.delete().where(task_logs.c.id >= ids[1]))
    assert fold(atlas).folded_through_id == ids[0]
    insert_runs(atlas.engine, *many(4, duration_ms=900))
    assert fold(atlas).folded == 4
    assert daily(atlas)[(TODAY, "ingest")].runs == 7


def test_a_fold_waits_for_a_run_logged_in_a_transaction_still_open(atlas):
    # PostgreSQL hands out ids at insert but shows rows at commit: without
    # waiting, a fold could pass a lower id that commits later.
    if atlas.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no id can commit out of order")
    slow = atlas.engine.connect()
    transaction = slow.begin()
    result: list = []
    folding = threading.Thread(target=lambda: result.append(fold(atlas)))
    try:
        slow.execute(insert(task_logs).values(run(task_id=1)))  # lower id, not committed
        insert_runs(atlas.engine, run(task_id=2))  # higher id, committed
        folding.start()
        folding.join(timeout=1.0)
        waited = folding.is_alive()  # waiting for the open transaction
    finally:
        transaction.commit()
        slow.close()
    folding.join(timeout=30)
    assert waited
    assert result[0].folded == 2
    assert daily(atlas)[(TODAY, "ingest")].runs == 2
