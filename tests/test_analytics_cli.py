"""``atlas analyze-task-metrics``: output, JSON, bad input, and real dispatcher runs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from analytics_support import insert_runs, many, run
from atlas.analytics import find_bottlenecks, summarise_task_metrics, task_trends
from atlas.app import open_atlas
from atlas.db import utcnow
from atlas.db.tables import task_logs
from atlas.errors import Unavailable
from atlas.tasks import TaskContext, task_type


@task_type("analytics-test-ok")
def _ok_task(ctx: TaskContext, n: int = 0) -> dict[str, int]:
    """Succeeds."""
    return {"n": n}


@task_type("analytics-test-flaky", retries=2, retry_delay_s=0)
def _flaky_task(ctx: TaskContext, path: str) -> None:
    """Fails with a transient error, so it is retried, then gives up."""
    raise Unavailable(f"the store at {path} is not answering")


def recent(atlas):
    """Realistic recent runs around the real clock (the CLI uses it)."""
    now = utcnow()
    insert_runs(
        atlas.engine,
        *many(6, task_type="ingest", duration_ms=120, at=now - timedelta(hours=2)),
        run(
            "ingest",
            "error",
            80,
            at=now - timedelta(hours=1),
            error="ffprobe failed on '/lib/a.mkv' (exit 1)",
        ),
        run(
            "ingest",
            "error",
            90,
            at=now - timedelta(hours=1),
            error="ffprobe failed on '/lib/b.mkv' (exit 2)",
        ),
        run("transcribe", duration_ms=40_000, at=now - timedelta(hours=3), queue_wait_ms=900),
        run("transcribe", duration_ms=20_000, at=now - timedelta(days=3)),
    )


def test_summary_shows_rates_durations_types_and_grouped_reasons(atlas, cli):
    recent(atlas)
    result = cli("analyze-task-metrics")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Task runs in the last 24 hours" in out
    assert "9 runs · 7 completed · 2 failed · 0 cancelled · 0 running" in out
    assert "success 77.8%" in out
    assert "ingest" in out and "transcribe" in out
    assert "ffprobe failed on '<path>' (exit <n>)" in out
    assert "e.g. ffprobe failed on '/lib/" in out
    assert "100.0%" in out  # the one reason is all the failures

    wider = cli("analyze-task-metrics", "--hours", "96", "--json")
    assert json.loads(wider.stdout)["total"]["runs"] == 10


def test_every_mode_prints_json(atlas, cli):
    recent(atlas)
    summary = json.loads(cli("analyze-task-metrics", "--json", "--type", "ingest").stdout)
    assert summary["total"]["runs"] == 8 and list(summary["by_type"]) == ["ingest"]
    assert summary["failure_reasons"][0]["count"] == 2
    assert "completed / (completed + failed)" in summary["rules"]["success_rate"]

    trends = json.loads(cli("analyze-task-metrics", "--trends", "--days", "5", "--json").stdout)
    assert trends["days"] == 5 and trends["overall"]["runs"] == 10
    assert "direction" in trends["by_type"][0] and trends["direction_rule"]["text"]

    slow = json.loads(
        cli("analyze-task-metrics", "--bottlenecks", "--threshold", "1000", "--json").stdout
    )
    assert slow["threshold_ms"] == 1000 and slow["bottlenecks"][0]["task_type"] == "transcribe"
    assert slow["queue"]["total"]["runs"] == 1

    plan = json.loads(
        cli("analyze-task-metrics", "--cleanup", "--keep-days", "1", "--dry-run", "--json").stdout
    )
    assert plan["dry_run"] and plan["deleted"] == 1
    assert "user_feedback" in plan["untouched"]


def test_trends_draw_a_chart_in_the_terminal(atlas, cli):
    recent(atlas)
    result = cli("analyze-task-metrics", "--trends", "--days", "4")
    assert result.exit_code == 0, result.output
    assert "Trends over the last 4 days" in result.stdout
    assert "█" in result.stdout  # the p50 bars
    assert any(mark in result.stdout for mark in "▁▂▃▄▅▆▇")  # the sparklines
    assert "rule: the window is split" in result.stdout


def test_bottlenecks_show_the_threshold_slow_types_longest_runs_and_queue(atlas, cli):
    recent(atlas)
    result = cli("analyze-task-metrics", "--bottlenecks")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "threshold" in out and "p95 of all 9 completed and failed runs" in out
    assert "Task types with slow runs" in out and "Longest runs" in out
    assert "Queue wait vs run time" in out


def test_cleanup_dry_run_then_cleanup(atlas, cli):
    recent(atlas)
    dry = cli("analyze-task-metrics", "--cleanup", "--keep-days", "1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: would delete 1 task log row older than 1 day" in dry.stdout
    with atlas.engine.connect() as connection:
        assert len(connection.execute(select(task_logs.c.id)).all()) == 10
    done = cli("analyze-task-metrics", "--cleanup", "--keep-days", "1")
    assert done.exit_code == 0, done.output
    assert "deleted 1 task log row older than 1 day" in done.stdout
    assert "user feedback is never deleted" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--trends",),
        ("--bottlenecks",),
        ("--type", "ingest"),
    ],
)
def test_an_empty_database_says_no_tasks_recorded_yet(cli, args):
    result = cli("analyze-task-metrics", *args)
    assert result.exit_code == 0
    assert result.stdout.strip() == "no tasks recorded yet"


def test_a_quiet_window_says_so(atlas, cli):
    insert_runs(atlas.engine, run(at=utcnow() - timedelta(days=3)))
    result = cli("analyze-task-metrics", "--hours", "2")
    assert result.exit_code == 0
    assert result.stdout.strip() == "no task runs in the last 2 hours"


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (("--hours", "0"), 2, "atlas: --hours must be at least 1 (got 0)"),
        (("--hours", "-5"), 2, "atlas: --hours must be at least 1 (got -5)"),
        (("--bottlenecks", "--hours", "-1"), 2, "atlas: --hours must be at least 1 (got -1)"),
        (("--trends", "--days", "0"), 2, "atlas: --days must be at least 1 (got 0)"),
        (("--trends", "--days", "-3"), 2, "atlas: --days must be at least 1 (got -3)"),
        (("--cleanup", "--keep-days", "0"), 2, "atlas: --keep-days must be at least 1 (got 0)"),
        (
            ("--cleanup", "--keep-days", "-1", "--dry-run"),
            2,
            "atlas: --keep-days must be at least 1 (got -1)",
        ),
        (
            ("--bottlenecks", "--threshold", "-10"),
            2,
            "atlas: --threshold must be a positive number of milliseconds (got -10)",
        ),
        (
            ("--trends", "--cleanup"),
            2,
            "atlas: choose one of --trends, --bottlenecks and --cleanup (got --trends --cleanup)",
        ),
        (
            ("--days", "3"),
            2,
            "atlas: --days goes with --trends (the summary and --bottlenecks take --hours)",
        ),
        (("--trends", "--hours", "3"), 2, "atlas: --trends takes --days, not --hours"),
        (("--threshold", "5"), 2, "atlas: --threshold goes with --bottlenecks"),
        (("--keep-days", "5"), 2, "atlas: --keep-days goes with --cleanup"),
        (("--dry-run",), 2, "atlas: --dry-run goes with --cleanup"),
        (
            ("--cleanup", "--type", "ingest"),
            2,
            "atlas: --cleanup applies to every task type; leave out --type",
        ),
    ],
)
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(cli, args, code, line):
    result = cli("analyze-task-metrics", *args)
    assert result.exit_code == code
    assert result.stderr.strip() == line
    assert result.stdout == ""


def test_an_unknown_task_type_is_named_with_the_known_ones(atlas, cli):
    recent(atlas)
    for args in ((), ("--trends",), ("--bottlenecks",)):
        result = cli("analyze-task-metrics", *args, "--type", "nope")
        assert result.exit_code == 3
        line = result.stderr.strip()
        assert line.startswith("atlas: unknown task type 'nope' (known: ")
        assert "ingest" in line and "transcribe" in line and "\n" not in line


def test_analysis_sees_tasks_run_through_the_dispatcher(atlas):
    for n in range(3):
        assert atlas.dispatcher.submit("analytics-test-ok", {"n": n}).ok
    for path in ("/srv/a", "/srv/b"):
        outcome = atlas.dispatcher.submit("analytics-test-flaky", {"path": path})
        assert outcome.status == "error"

    summary = summarise_task_metrics(atlas.engine, atlas.settings.analytics)
    ok = summary.by_type["analytics-test-ok"]
    flaky = summary.by_type["analytics-test-flaky"]
    assert (ok.runs, ok.completed, ok.success_rate) == (3, 3, 1.0)
    assert ok.duration.count == 3 and ok.duration.max_ms is not None
    assert (flaky.runs, flaky.failed, flaky.retries, flaky.retried_runs) == (2, 2, 4, 2)
    [reason] = summary.failure_reasons
    assert reason.reason == "the store at <path> is not answering" and reason.count == 2

    trend = task_trends(atlas.engine, atlas.settings.analytics, days=1)
    by_type = {t.task_type: t for t in trend.by_type}
    assert by_type["analytics-test-ok"].days[-1].completed == 3
    assert by_type["analytics-test-flaky"].days[-1].failed == 2

    report = find_bottlenecks(atlas.engine)
    assert report.measured_runs == 5 and report.queue_total is None  # all in-process


def test_in_process_runs_record_no_queue_wait_and_queued_runs_do(make_settings, tmp_path):
    inline = open_atlas(make_settings(auto_process=False))
    try:
        inline.dispatcher.submit("analytics-test-ok")
    finally:
        inline.close()
    queued = open_atlas(
        make_settings(auto_process=False, queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    )
    try:
        outcome = queued.dispatcher.submit("analytics-test-ok")
        assert outcome.status == "queued"
        queued.dispatcher.execute(outcome.task_id)  # what `atlas worker` does with the message
        with queued.engine.connect() as connection:
            waits = (
                connection.execute(select(task_logs.c.queue_wait_ms).order_by(task_logs.c.id))
                .scalars()
                .all()
            )
        assert waits[0] is None and waits[1] is not None and waits[1] >= 0
        assert find_bottlenecks(queued.engine).queue_total.runs == 1
    finally:
        queued.close()


def test_the_command_has_help_listing_its_flags(cli):
    result = cli("analyze-task-metrics", "--help")
    assert result.exit_code == 0
    for flag in (
        "--hours",
        "--trends",
        "--days",
        "--bottlenecks",
        "--threshold",
        "--cleanup",
        "--keep-days",
        "--dry-run",
        "--type",
        "--json",
    ):
        assert flag in result.stdout
    assert "analyze-task-metrics" in cli("--help").stdout


def test_sparklines_scale_between_lowest_and_highest_and_long_series_are_averaged():
    from atlas.cli._analytics_view import format_ms, shrink, sparkline

    assert sparkline([0, 5, 10, None]) == "▁▅█ "
    assert sparkline([3, 3]) == "▅▅" and sparkline([None]) == " "
    assert shrink([1, 2, 3, 4, None, None], 3) == [1.5, 3.5, None]
    assert len(shrink(list(range(90)), 30)) == 30
    assert [format_ms(v) for v in (None, 340, 4100, 125_000, 3_720_000)] == [
        "–",
        "340 ms",
        "4.1 s",
        "2m 05s",
        "1h 02m",
    ]
