"""Trends: per day and task type, with the direction of change judged by a stated rule."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from analytics_support import NOW, insert_runs, run
from atlas.analytics import DEGRADING, IMPROVING, INSUFFICIENT, STABLE, task_trends
from atlas.errors import InvalidInput, NotFound

TODAY = NOW.date()


def at_day(days_ago: int, minute: int = 0) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(10, minute), UTC)


def trends(atlas, **kwargs):
    return task_trends(atlas.engine, atlas.settings.analytics, now=NOW, **kwargs)


def runs_on(days_ago, count, *, task_type="ingest", failed=0, duration_ms=100):
    rows = [
        run(task_type, duration_ms=duration_ms, at=at_day(days_ago, i % 60))
        for i in range(count - failed)
    ]
    rows += [
        run(task_type, "error", duration_ms, at=at_day(days_ago, i % 60), error="boom")
        for i in range(failed)
    ]
    return rows


def test_trend_days_show_runs_success_and_percentiles_per_day_and_type(atlas):
    insert_runs(
        atlas.engine,
        *runs_on(2, 4, failed=1, duration_ms=200),
        *runs_on(2, 2, task_type="tag", duration_ms=30),
        *runs_on(0, 3, duration_ms=1000),
    )
    report = trends(atlas, days=3)
    assert (report.first_day, report.last_day, report.days) == (
        TODAY - timedelta(days=2),
        TODAY,
        3,
    )
    ingest = next(t for t in report.by_type if t.task_type == "ingest")
    first, middle, last = ingest.days
    assert (first.runs, first.completed, first.failed) == (4, 3, 1)
    assert first.success_rate == pytest.approx(0.75)
    assert first.p50_ms == 200 and first.p95_ms == 200  # clamped to the observed range
    assert middle.runs == 0 and middle.success_rate is None and middle.p50_ms is None
    assert last.runs == 3 and last.p50_ms == 1000
    assert [t.task_type for t in report.by_type] == ["ingest", "tag"]
    assert report.overall.days[0].runs == 6


def test_success_rate_falling_by_enough_is_degrading(atlas):
    insert_runs(
        atlas.engine,
        *(row for d in range(5, 10) for row in runs_on(d, 20)),
        *(row for d in range(0, 5) for row in runs_on(d, 20, failed=4)),
    )
    trend = trends(atlas, days=10).by_type[0]
    assert trend.success == DEGRADING and trend.direction == DEGRADING
    assert trend.success_change == pytest.approx(-0.2)
    assert trend.earlier.runs == 100 and trend.recent.runs == 100
    assert trend.duration == STABLE


def test_median_duration_rising_by_a_fifth_or_more_is_degrading_and_falling_improving(atlas):
    insert_runs(
        atlas.engine,
        *(row for d in range(5, 10) for row in runs_on(d, 10, duration_ms=100)),
        *(row for d in range(0, 5) for row in runs_on(d, 10, duration_ms=200)),
        *(row for d in range(5, 10) for row in runs_on(d, 10, task_type="tag", duration_ms=500)),
        *(row for d in range(0, 5) for row in runs_on(d, 10, task_type="tag", duration_ms=100)),
    )
    report = trends(atlas, days=10)
    by_type = {t.task_type: t for t in report.by_type}
    assert by_type["ingest"].duration == DEGRADING and by_type["ingest"].direction == DEGRADING
    assert by_type["ingest"].duration_change == pytest.approx(1.0)
    assert by_type["tag"].duration == IMPROVING and by_type["tag"].direction == IMPROVING
    assert by_type["tag"].success == STABLE


def test_small_changes_are_stable(atlas):
    insert_runs(
        atlas.engine,
        *(row for d in range(5, 10) for row in runs_on(d, 20, failed=1, duration_ms=100)),
        *(row for d in range(0, 5) for row in runs_on(d, 20, failed=2, duration_ms=110)),
    )
    trend = trends(atlas, days=10).by_type[0]
    assert (trend.success, trend.duration, trend.direction) == (STABLE, STABLE, STABLE)


def test_too_few_runs_in_a_half_is_insufficient_data(atlas):
    insert_runs(atlas.engine, *runs_on(8, 5), *runs_on(1, 50, failed=40, duration_ms=5000))
    trend = trends(atlas, days=10).by_type[0]
    assert trend.direction == INSUFFICIENT
    assert trends(atlas, days=1).overall.direction == INSUFFICIENT


def test_the_rule_is_stated_with_its_thresholds(atlas, make_settings):
    from atlas.app import open_atlas

    custom = open_atlas(make_settings(analytics={"trend_min_runs": 3}))
    try:
        insert_runs(custom.engine, *runs_on(8, 5), *runs_on(1, 5, failed=4))
        report = trends(custom, days=10)
        assert report.by_type[0].success == DEGRADING
        rule = report.to_dict()["direction_rule"]
        assert rule["min_runs"] == 3 and "at least 3 completed or failed runs" in rule["text"]
        assert "20%" in rule["text"] and "5 points" in rule["text"]
    finally:
        custom.close()


@pytest.mark.parametrize("days", [0, -7, 100_000])
def test_days_out_of_range_are_refused(atlas, days):
    with pytest.raises(InvalidInput, match="`days` must be"):
        trends(atlas, days=days)


def test_trends_of_one_type_and_of_an_unknown_type(atlas):
    insert_runs(atlas.engine, *runs_on(1, 2), *runs_on(1, 3, task_type="tag"))
    report = trends(atlas, days=3, task_type="tag")
    assert [t.task_type for t in report.by_type] == ["tag"] and report.overall.runs == 3
    with pytest.raises(NotFound, match="unknown task type 'nope'"):
        trends(atlas, task_type="nope")


def test_trends_of_an_empty_database_say_nothing_is_recorded(atlas):
    report = trends(atlas)
    assert report.nothing_recorded and report.empty and report.by_type == []
