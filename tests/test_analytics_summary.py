"""The summary of recent runs: counts, success rate, durations, retries, failure reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from analytics_support import NOW, insert_runs, many, run
from atlas.analytics import cleanup_task_logs, summarise_task_metrics
from atlas.db.tables import task_log_fold_state
from atlas.errors import InvalidInput, NotFound


def summarise(atlas, **kwargs):
    return summarise_task_metrics(atlas.engine, atlas.settings.analytics, now=NOW, **kwargs)


def test_summary_counts_runs_success_rate_retries_and_exact_percentiles_per_type(atlas):
    insert_runs(
        atlas.engine,
        run("ingest", duration_ms=100),
        run("ingest", duration_ms=200, retries=1),
        run("ingest", duration_ms=300),
        run("ingest", duration_ms=400),
        run("ingest", "error", 1000, retries=2, error="boom"),
        run("ingest", "cancelled", 5000),
        run("ingest", "running"),
        run("tag", duration_ms=50),
    )
    report = summarise(atlas)

    ingest = report.by_type["ingest"]
    assert (ingest.runs, ingest.completed, ingest.failed, ingest.cancelled, ingest.running) == (
        7,
        4,
        1,
        1,
        1,
    )
    assert ingest.success_rate == pytest.approx(4 / 5)  # cancelled and running left out
    assert (ingest.retries, ingest.retried_runs) == (3, 2)
    # Durations of completed and failed runs only: the cancelled 5000 ms is not one.
    assert ingest.duration.count == 5
    assert ingest.duration.mean_ms == 400
    assert ingest.duration.p50_ms == 300
    assert ingest.duration.p95_ms == pytest.approx(880)
    assert ingest.duration.max_ms == 1000

    assert report.total.runs == 8 and report.total.completed == 5
    assert report.total.success_rate == pytest.approx(5 / 6)
    assert report.total.duration.p50_ms == 250  # of 50, 100, 200, 300, 400, 1000
    assert report.total.duration.max_ms == 1000
    assert list(report.by_type) == ["ingest", "tag"]  # most runs first
    assert not report.nothing_recorded and not report.empty


def test_summary_counts_only_runs_that_started_within_the_hours_asked(atlas):
    insert_runs(
        atlas.engine,
        run(ago=timedelta(hours=30)),
        run(ago=timedelta(hours=23, minutes=59)),
        run(ago=timedelta(minutes=1)),
    )
    assert summarise(atlas).total.runs == 2
    assert summarise(atlas, hours=48).total.runs == 3
    assert summarise(atlas, hours=1).total.runs == 1


def test_failure_reasons_that_differ_only_in_ids_paths_and_numbers_count_as_one(atlas):
    insert_runs(
        atlas.engine,
        run("ingest", "error", error="ffprobe failed on '/lib/a.mkv' (exit 1)"),
        run("ingest", "error", error="ffprobe failed on '/lib/a.mkv' (exit 1)"),
        run("ingest", "error", error="ffprobe failed on '/other/b c.mp4' (exit 183)"),
        run("transcribe", "error", error="media 17 not found"),
        run("ingest", "error", error="media 9 not found"),
        run("ingest", "error", error="database is locked"),
        *many(4, task_type="ingest"),
    )
    report = summarise(atlas)
    reasons = {reason.reason: reason for reason in report.failure_reasons}
    assert list(reasons) == [
        "ffprobe failed on '<path>' (exit <n>)",
        "media <n> not found",
        "database is locked",
    ]
    ffprobe = reasons["ffprobe failed on '<path>' (exit <n>)"]
    assert ffprobe.count == 3
    assert ffprobe.share == pytest.approx(3 / 6)
    assert ffprobe.example == "ffprobe failed on '/lib/a.mkv' (exit 1)"  # the most frequent
    assert reasons["media <n> not found"].task_types == ["ingest", "transcribe"]
    assert report.distinct_reasons == 3 and report.other_failures == 0


def test_reasons_beyond_the_top_ones_are_counted_together(atlas):
    insert_runs(
        atlas.engine,
        *many(3, status="error", error="alpha failed"),
        *many(2, status="error", error="beta failed"),
        run(status="error", error="gamma failed"),
    )
    report = summarise(atlas, top_reasons=1)
    assert [r.reason for r in report.failure_reasons] == ["alpha failed"]
    assert report.other_failures == 3 and report.distinct_reasons == 3


def test_runs_still_running_past_the_stale_limit_are_reported_as_stale(atlas):
    insert_runs(
        atlas.engine,
        run(status="running", ago=timedelta(hours=30)),
        run(status="running", ago=timedelta(minutes=5)),
    )
    report = summarise(atlas, hours=48)
    assert (report.total.running, report.total.stale) == (2, 1)
    assert report.total.success_rate is None


def test_an_empty_database_is_not_an_error_but_says_nothing_is_recorded(atlas):
    report = summarise(atlas)
    assert report.nothing_recorded and report.empty
    assert report.total.runs == 0 and report.failure_reasons == []


def test_a_quiet_window_is_empty_but_the_database_is_not(atlas):
    insert_runs(atlas.engine, run(ago=timedelta(days=3)))
    report = summarise(atlas)
    assert report.empty and not report.nothing_recorded


def test_type_filter_keeps_one_type_and_unknown_types_are_refused(atlas):
    insert_runs(atlas.engine, run("ingest"), run("tag"), run("tag", "error", error="x"))
    report = summarise(atlas, task_type="tag")
    assert list(report.by_type) == ["tag"] and report.total.runs == 2
    # Registered but never run: an empty answer, not an error.
    assert summarise(atlas, task_type="catalog-import").empty
    with pytest.raises(NotFound, match=r"unknown task type 'nope' \(known: .*ingest.*tag"):
        summarise(atlas, task_type="nope")


@pytest.mark.parametrize("hours", [0, -1, -24, 10**9])
def test_hours_out_of_range_are_refused(atlas, hours):
    with pytest.raises(InvalidInput, match="`hours` must be"):
        summarise(atlas, hours=hours)


def test_summary_says_when_its_window_reaches_back_before_a_cleanup(atlas):
    insert_runs(atlas.engine, run(ago=timedelta(days=5)), run(ago=timedelta(hours=1)))
    cleanup_task_logs(atlas.engine, atlas.settings.analytics, keep_days=2, now=NOW)
    assert summarise(atlas, hours=24 * 7).cleaned_before == NOW - timedelta(days=2)
    assert summarise(atlas, hours=24).cleaned_before is None
    with atlas.engine.begin() as connection:
        connection.execute(update(task_log_fold_state).values(cleaned_before=None))
    assert summarise(atlas, hours=24 * 7).cleaned_before is None
