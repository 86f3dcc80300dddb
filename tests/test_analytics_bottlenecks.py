"""Bottlenecks: slow task types, their share of busy time, the longest runs, queue waits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics_support import NOW, insert_runs, many, run
from atlas.analytics import find_bottlenecks
from atlas.errors import InvalidInput, NotFound


def bottlenecks(atlas, **kwargs):
    return find_bottlenecks(atlas.engine, now=NOW, **kwargs)


def test_default_threshold_is_the_p95_and_slow_runs_get_their_share_of_busy_time(atlas):
    # 19 fast ingests and one 10 s transcription: p95 = 100 + 0.05 * 9900 ms.
    insert_runs(
        atlas.engine,
        *many(19, task_type="ingest", duration_ms=100),
        run("transcribe", duration_ms=10_000),
        run("transcribe", "cancelled", 50_000),  # cut short: not a measured run
    )
    report = bottlenecks(atlas)
    assert report.threshold_source == "p95"
    assert report.threshold_ms == pytest.approx(595)
    assert report.measured_runs == 20 and report.busy_ms == 11_900
    assert [load.task_type for load in report.bottlenecks] == ["transcribe"]
    slow = report.bottlenecks[0]
    assert (slow.runs, slow.slow_runs, slow.slow_busy_ms) == (1, 1, 10_000)
    assert slow.slow_busy_share == pytest.approx(10_000 / 11_900)
    assert slow.busy_share == pytest.approx(10_000 / 11_900)
    ingest = next(load for load in report.types if load.task_type == "ingest")
    assert ingest.slow_runs == 0 and ingest.busy_share == pytest.approx(1_900 / 11_900)


def test_a_given_threshold_is_used_and_failed_runs_count_as_busy(atlas):
    insert_runs(
        atlas.engine,
        run("ingest", duration_ms=400),
        run("ingest", "error", 900, error="timeout"),
        run("tag", duration_ms=450),
    )
    report = bottlenecks(atlas, threshold_ms=420)
    assert report.threshold_source == "given" and report.threshold_ms == 420
    by_type = {load.task_type: load for load in report.bottlenecks}
    assert set(by_type) == {"ingest", "tag"}
    assert (by_type["ingest"].slow_runs, by_type["ingest"].slow_busy_ms) == (1, 900)
    assert [load.task_type for load in report.bottlenecks] == ["ingest", "tag"]
    assert bottlenecks(atlas, threshold_ms=5000).bottlenecks == []


def test_longest_runs_are_listed_longest_first_with_task_and_time(atlas):
    ids = insert_runs(
        atlas.engine,
        run("ingest", duration_ms=300, task_id=11, ago=timedelta(hours=3)),
        run("tag", duration_ms=9_000, task_id=12, ago=timedelta(hours=2)),
        run("ingest", duration_ms=5_000, task_id=13, ago=timedelta(hours=1)),
        run("ingest", duration_ms=99_000, task_id=14, ago=timedelta(hours=30)),  # outside
    )
    longest = bottlenecks(atlas, longest=2).longest
    assert [(r.task_id, r.task_type, r.duration_ms) for r in longest] == [
        (12, "tag", 9_000),
        (13, "ingest", 5_000),
    ]
    assert longest[0].started_at == NOW - timedelta(hours=2)
    assert longest[0].log_id == ids[1]


def test_queue_wait_is_compared_with_run_time_for_runs_that_went_through_the_queue(atlas):
    insert_runs(
        atlas.engine,
        run("ingest", duration_ms=100, queue_wait_ms=300),
        run("ingest", duration_ms=100, queue_wait_ms=100),
        run("tag", duration_ms=1000, queue_wait_ms=0),
        run("tag", duration_ms=5000),  # ran in-process: no queue wait
    )
    report = bottlenecks(atlas)
    assert report.queue_total is not None
    assert report.queue_total.runs == 3
    assert report.queue_total.wait_share == pytest.approx(400 / 1600)
    by_type = {load.task_type: load for load in report.queue}
    assert by_type["ingest"].wait_mean_ms == 200 and by_type["ingest"].wait_max_ms == 300
    assert by_type["ingest"].wait_p95_ms == pytest.approx(290)
    assert by_type["tag"].runs == 1 and by_type["tag"].run_mean_ms == 1000


def test_no_queue_figures_when_every_run_was_in_process(atlas):
    insert_runs(atlas.engine, *many(3))
    report = bottlenecks(atlas)
    assert report.queue_total is None and report.queue == []


@pytest.mark.parametrize("threshold", [0, -1])
def test_threshold_must_be_positive(atlas, threshold):
    with pytest.raises(InvalidInput, match="`threshold` must be a positive number"):
        bottlenecks(atlas, threshold_ms=threshold)


def test_bottlenecks_of_an_empty_database_and_of_an_unknown_type(atlas):
    report = bottlenecks(atlas)
    assert report.nothing_recorded and report.empty and report.threshold_ms is None
    with pytest.raises(NotFound):
        bottlenecks(atlas, task_type="nope")
