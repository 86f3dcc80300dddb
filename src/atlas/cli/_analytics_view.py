"""Rendering of the task analytics for the terminal (tables, sparklines, bar charts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from atlas.analytics import (
    DEGRADING,
    IMPROVING,
    BottleneckReport,
    CleanupReport,
    MetricsSummary,
    RunStats,
    Trend,
    TrendReport,
)

__all__ = ["bottlenecks", "cleanup", "format_ms", "shrink", "sparkline", "summary", "trends"]

NOTHING_YET = "no tasks recorded yet"
_SPARKS = "▁▂▃▄▅▆▇█"
_BAR_WIDTH = 30
_SPARK_WIDTH = 30
_DIRECTION_STYLE = {IMPROVING: "green", DEGRADING: "red"}
_ARROWS = {IMPROVING: "↗", DEGRADING: "↘"}


# --- formatting ------------------------------------------------------------------


def format_ms(value: float | None) -> str:
    """A duration for people: 340 ms, 4.1 s, 2m 05s, 1h 02m."""
    if value is None:
        return "–"
    if value < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {second:02d}s"
    hours, minute = divmod(minutes, 60)
    return f"{hours}h {minute:02d}m"


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def _n(value: int) -> str:
    return f"{value:,}"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    """``1 run``, ``2 runs``."""
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def shrink(values: Sequence[float | None], width: int) -> list[float | None]:
    """At most ``width`` values: neighbours averaged in equal groups (None ignored)."""
    if len(values) <= width:
        return list(values)
    size = -(-len(values) // width)
    groups = [values[i : i + size] for i in range(0, len(values), size)]
    shrunk: list[float | None] = []
    for group in groups:
        present = [v for v in group if v is not None]
        shrunk.append(sum(present) / len(present) if present else None)
    return shrunk


def sparkline(values: Sequence[float | None]) -> str:
    """One character per value, scaled from the lowest to the highest; blank for None."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    low, high = min(present), max(present)
    span = high - low
    chars = []
    for value in values:
        if value is None:
            chars.append(" ")
        elif span <= 0:
            chars.append(_SPARKS[len(_SPARKS) // 2])
        else:
            chars.append(_SPARKS[round((value - low) / span * (len(_SPARKS) - 1))])
    return "".join(chars)


def _bar(p50: float | None, p95: float | None, scale: float) -> Text:
    """█ up to the p50, ░ on to the p95, on a shared scale."""
    if p50 is None or scale <= 0:
        return Text("")
    solid = max(1, round(p50 / scale * _BAR_WIDTH)) if p50 > 0 else 0
    light = max(solid, round((p95 or p50) / scale * _BAR_WIDTH)) - solid
    return Text("█" * solid, style="cyan") + Text("░" * light, style="cyan dim")


# --- summary ---------------------------------------------------------------------


def summary(console: Console, report: MetricsSummary) -> None:
    window = report.window
    scope = f" of type {window.task_type}" if window.task_type else ""
    if report.nothing_recorded:
        console.print(NOTHING_YET)
        return
    hours = f"{window.hours:g} hours"
    if report.empty:
        console.print(f"no task runs{scope} in the last {hours}")
        return
    console.print(
        f"[bold]Task runs{scope} in the last {hours}[/] "
        f"({_when(window.since)} → {_when(window.until)} UTC)"
    )
    total = report.total
    console.print(_totals_line(total, report.stale_after_hours))
    console.print(
        f"success {_pct(total.success_rate)} · retries {_n(total.retries)} "
        f"in {_plural(total.retried_runs, 'run')} · "
        f"duration mean {format_ms(total.duration.mean_ms)}, "
        f"p50 {format_ms(total.duration.p50_ms)}, p95 {format_ms(total.duration.p95_ms)}, "
        f"max {format_ms(total.duration.max_ms)}"
    )
    if report.cleaned_before is not None:
        console.print(
            f"[yellow]runs before {_when(report.cleaned_before)} UTC were removed by cleanup; "
            "their daily summaries remain (see --trends)[/]"
        )

    table = Table(title="By task type", title_justify="left")
    for column in ("type", "runs", "completed", "failed", "cancelled", "running"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for column in ("success", "mean", "p50", "p95", "max", "retries"):
        table.add_column(column, justify="right")
    for name, stats in report.by_type.items():
        table.add_row(name, *_stat_cells(stats))
    if len(report.by_type) > 1:
        table.add_section()
        table.add_row("[bold]all[/]", *_stat_cells(total))
    console.print(table)

    if report.failure_reasons:
        failed = total.failed
        reasons = Table(
            title=(
                f"Failure reasons ({_plural(failed, 'failed run')}, "
                f"{_plural(report.distinct_reasons, 'distinct reason')})"
            ),
            title_justify="left",
        )
        reasons.add_column("count", justify="right")
        reasons.add_column("share", justify="right")
        reasons.add_column("reason (ids, paths and numbers as <…>) / example", overflow="fold")
        reasons.add_column("types", overflow="fold")
        for reason in report.failure_reasons:
            cell = Text(reason.reason)
            if reason.example != reason.reason:
                cell.append("\ne.g. " + reason.example, style="dim")
            reasons.add_row(
                _n(reason.count), _pct(reason.share), cell, ", ".join(reason.task_types)
            )
        if report.other_failures:
            reasons.add_row(
                _n(report.other_failures),
                _pct(report.other_failures / failed if failed else None),
                Text("(other reasons)", style="dim"),
                "",
            )
        console.print(reasons)
    console.print(f"[dim]{report.rules.get('success_rate', '')}[/]")


def _totals_line(stats: RunStats, stale_after_hours: float) -> str:
    parts = [
        _plural(stats.runs, "run"),
        f"{_n(stats.completed)} completed",
        f"{_n(stats.failed)} failed",
        f"{_n(stats.cancelled)} cancelled",
        f"{_n(stats.running)} running",
    ]
    if stats.stale:
        parts[-1] += f" ({_n(stats.stale)} started over {stale_after_hours:g} h ago: stale)"
    return " · ".join(parts)


def _stat_cells(stats: RunStats) -> list[str]:
    return [
        _n(stats.runs),
        _n(stats.completed),
        _n(stats.failed),
        _n(stats.cancelled),
        _n(stats.running),
        _pct(stats.success_rate),
        format_ms(stats.duration.mean_ms),
        format_ms(stats.duration.p50_ms),
        format_ms(stats.duration.p95_ms),
        format_ms(stats.duration.max_ms),
        _n(stats.retries),
    ]


# --- trends ----------------------------------------------------------------------


def trends(console: Console, report: TrendReport) -> None:
    if report.nothing_recorded:
        console.print(NOTHING_YET)
        return
    scope = f" of type {report.task_type}" if report.task_type else ""
    period = f"{report.days} day{'s' if report.days != 1 else ''}"
    if report.empty:
        console.print(f"no task runs{scope} in the last {period}")
        return
    console.print(
        f"[bold]Trends{scope} over the last {period}[/] "
        f"({report.first_day} → {report.last_day}, UTC days)"
    )
    overview = Table(title="Direction of change (earlier half → recent half)", title_justify="left")
    per_mark = -(-report.days // _SPARK_WIDTH)
    period_label = "per day" if per_mark == 1 else f"per {per_mark} days"
    overview.add_column("type")
    overview.add_column("runs", justify="right")
    overview.add_column(f"success {period_label}", no_wrap=True)
    overview.add_column("success", justify="right")
    overview.add_column(f"p50 {period_label}", no_wrap=True)
    overview.add_column("p50", justify="right")
    overview.add_column("direction")
    rows = [*report.by_type]
    if len(report.by_type) > 1:
        rows.append(report.overall)
    for trend in rows:
        overview.add_row(
            trend.task_type or "[bold]all[/]",
            _n(trend.runs),
            Text(sparkline(shrink([p.success_rate for p in trend.days], _SPARK_WIDTH)), "green"),
            _change(trend, "success"),
            Text(sparkline(shrink([p.p50_ms for p in trend.days], _SPARK_WIDTH)), "cyan"),
            _change(trend, "duration"),
            _direction(trend),
        )
    console.print(overview)
    for trend in report.by_type:
        console.print(_day_table(trend))
    console.print(f"[dim]rule: {report.rule.describe()}[/]")
    console.print(f"[dim]{report.percentile_rule}[/]")


def _change(trend: Trend, which: str) -> str:
    if trend.earlier is None or trend.recent is None:
        return "–"
    if which == "success":
        return f"{_pct(trend.earlier.success_rate)} → {_pct(trend.recent.success_rate)}"
    return f"{format_ms(trend.earlier.p50_ms)} → {format_ms(trend.recent.p50_ms)}"


def _direction(trend: Trend) -> Text:
    text = Text(f"{_ARROWS.get(trend.direction, '→')} {trend.direction}")
    text.stylize(_DIRECTION_STYLE.get(trend.direction, ""))
    details = []
    if trend.success not in (trend.direction,) and trend.success != "insufficient data":
        details.append(f"success {trend.success}")
    if trend.duration not in (trend.direction,) and trend.duration != "insufficient data":
        details.append(f"duration {trend.duration}")
    if details and trend.direction in (IMPROVING, DEGRADING):
        text.append(f" ({'; '.join(details)})", style="dim")
    return text


def _day_table(trend: Trend) -> Table:
    scale = max((p.p95_ms or p.p50_ms or 0 for p in trend.days), default=0)
    table = Table(
        title=f"{trend.task_type}: {_ARROWS.get(trend.direction, '→')} {trend.direction}",
        title_justify="left",
    )
    for column in ("day", "runs", "failed", "success", "p50", "p95"):
        table.add_column(column, justify="left" if column == "day" else "right")
    table.add_column(f"p50 █ / p95 ░ (scale {format_ms(scale)})")
    for point in trend.days:
        if point.runs == 0:
            table.add_row(point.day.isoformat(), "0", "", "–", "–", "–", "", style="dim")
            continue
        table.add_row(
            point.day.isoformat(),
            _n(point.runs),
            _n(point.failed),
            _pct(point.success_rate),
            format_ms(point.p50_ms),
            format_ms(point.p95_ms),
            _bar(point.p50_ms, point.p95_ms, scale),
        )
    return table


# --- bottlenecks -----------------------------------------------------------------


def bottlenecks(console: Console, report: BottleneckReport) -> None:
    window = report.window
    if report.nothing_recorded:
        console.print(NOTHING_YET)
        return
    scope = f" of type {window.task_type}" if window.task_type else ""
    if report.empty:
        console.print(f"no finished task runs{scope} in the last {window.hours:g} hours")
        return
    source = (
        "given with --threshold"
        if report.threshold_source == "given"
        else f"the p95 of all {_n(report.measured_runs)} completed and failed runs"
    )
    console.print(
        f"[bold]Bottlenecks{scope} in the last {window.hours:g} hours[/] · "
        f"threshold {format_ms(report.threshold_ms)} ({source}) · "
        f"busy time {format_ms(report.busy_ms)}"
    )
    if not report.bottlenecks:
        console.print(f"no run took longer than {format_ms(report.threshold_ms)}")
    else:
        table = Table(title="Task types with slow runs", title_justify="left")
        table.add_column("type")
        for column in (
            "runs",
            "slow",
            "slow %",
            "busy time",
            "busy share",
            "slow time",
            "slow share of all busy",
            "p95",
            "max",
        ):
            table.add_column(column, justify="right")
        for load in report.bottlenecks:
            table.add_row(
                load.task_type,
                _n(load.runs),
                _n(load.slow_runs),
                _pct(load.slow_runs / load.runs if load.runs else None),
                format_ms(load.busy_ms),
                _pct(load.busy_share),
                format_ms(load.slow_busy_ms),
                _pct(load.slow_busy_share),
                format_ms(load.p95_ms),
                format_ms(load.max_ms),
            )
        console.print(table)

    longest = Table(title="Longest runs", title_justify="left")
    for column in ("task", "type", "status", "duration", "started (UTC)", "queue wait", "worker"):
        longest.add_column(column, justify="right" if column in ("task", "duration") else "left")
    for run in report.longest:
        longest.add_row(
            str(run.task_id),
            run.task_type,
            run.status,
            format_ms(run.duration_ms),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            format_ms(run.queue_wait_ms) if run.queue_wait_ms is not None else "–",
            run.worker or "",
        )
    console.print(longest)

    if report.queue_total is None:
        console.print("no run in this window went through the task queue (all ran in-process)")
        return
    queue = Table(
        title="Queue wait vs run time (runs through the task queue)", title_justify="left"
    )
    queue.add_column("type")
    for column in ("runs", "mean wait", "p95 wait", "max wait", "mean run", "wait share"):
        queue.add_column(column, justify="right")
    queue_loads = [*report.queue, report.queue_total] if len(report.queue) > 1 else report.queue
    for queued in queue_loads:
        queue.add_row(
            queued.task_type or "[bold]all[/]",
            _n(queued.runs),
            format_ms(queued.wait_mean_ms),
            format_ms(queued.wait_p95_ms),
            format_ms(queued.wait_max_ms),
            format_ms(queued.run_mean_ms),
            _pct(queued.wait_share),
        )
    console.print(queue)


# --- cleanup ---------------------------------------------------------------------


def cleanup(console: Console, report: CleanupReport) -> None:
    before = (
        f"older than {_plural(report.keep_days, 'day')} (started before {_when(report.cutoff)} UTC)"
    )
    per_type = ", ".join(f"{name} {_n(count)}" for name, count in report.by_type.items())
    detail = f": {per_type}" if per_type else ""
    rows = _plural(report.deleted, "task log row")
    if report.dry_run:
        console.print(f"dry run: would delete {rows} {before}{detail}")
        if report.folded:
            console.print(
                f"{_plural(report.folded, 'row')} not yet in the daily summaries "
                "(a cleanup folds them in first)"
            )
    else:
        console.print(f"deleted {rows} {before}{detail}")
        if report.folded:
            console.print(f"folded {_plural(report.folded, 'row')} into the daily summaries first")
        if report.kept:
            console.print(
                f"kept {_plural(report.kept, 'old row')}: runs still in progress, or the newest row"
            )
    now = "" if report.dry_run else "now "
    console.print(f"{_plural(report.remaining, 'task log row')} {now}in the database")
    if report.summary_first_day is not None:
        console.print(
            f"daily summaries {report.summary_first_day} → {report.summary_last_day} are kept"
            " (trends stay available); user feedback is never deleted"
        )
    else:
        console.print("user feedback is never deleted")
