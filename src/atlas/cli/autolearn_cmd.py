"""``atlas autolearn insights|recommend|apply|dismiss|history|run``."""

from __future__ import annotations

from typing import Any

import typer

from atlas.autolearn import (
    Recommendation,
)
from atlas.cli._common import JSON_OPTION, emit_json, state
from atlas.errors import InvalidInput

autolearn_app = typer.Typer(
    help="Insights from what Atlas records, recommendations that act and are judged.",
    no_args_is_help=True,
)


def _say(text: str) -> None:
    typer.echo(text)


def _render_insight(insight: Any) -> None:
    _say(f"[{insight.severity}] {insight.kind}: {insight.statement}")
    evidence = ", ".join(
        f"{key}={value}"
        for key, value in insight.evidence.items()
        if not isinstance(value, (dict, list)) or key in ("media_ids", "task_ids", "busy_hours")
    )
    if evidence:
        _say(f"    evidence: {evidence}")
    if insight.suggestion is not None:
        _say(f"    can act: {insight.suggestion.action} (lowers: {insight.suggestion.metric})")


@autolearn_app.command("insights")
def insights_command(
    ctx: typer.Context,
    kind: str | None = typer.Option(
        None,
        "--kind",
        help="Only this kind: performance, reliability, coverage, learning, library or schedule.",
    ),
    since: int = typer.Option(7, "--since", help="Days of task runs to look at."),
    as_json: bool = JSON_OPTION,
) -> None:
    """What Atlas notices about the library and its work, each with its evidence."""
    report = state(ctx).library().insights(kind=kind, days=since)
    if as_json:
        emit_json(report.to_dict())
        return
    if not report.insights:
        _say("no insights: nothing the data supports stands out")
        return
    for insight in report.insights:
        _render_insight(insight)


def _render_rec(rec: Recommendation) -> None:
    flag = " (safe)" if rec.safe else ""
    _say(f"#{rec.id} [{rec.status}] {rec.kind}{flag}: {rec.statement}")
    _say(f"    plan: {rec.plan}")
    _say(f"    promises to lower: {rec.metric} (now {rec.baseline:g})")


@autolearn_app.command("recommend")
def recommend_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Make recommendations from the current insights and list the open ones."""
    sync, open_recs = state(ctx).library().recommend()
    if as_json:
        emit_json({"sync": sync.to_dict(), "recommendations": [r.to_dict() for r in open_recs]})
        return
    for kind, why in sync.blocked.items():
        _say(f"no longer proposing {kind}: {why}")
    if not open_recs:
        _say("no open recommendations")
        return
    for rec in open_recs:
        _render_rec(rec)


@autolearn_app.command("apply")
def apply_command(
    ctx: typer.Context,
    rec_id: int = typer.Argument(..., help="The recommendation id (see autolearn recommend)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show exactly what it would do."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Apply a recommendation as a task, exactly as its plan (--dry-run) says."""
    result = state(ctx).library().apply_recommendation(rec_id, dry_run=dry_run)
    if as_json:
        emit_json(result.to_dict())
        return
    if dry_run:
        _say(f"would {result.plan}")
        return
    follow = ", ".join(str(t) for t in result.follow_up_task_ids)
    _say(
        f"applied #{rec_id} (task {result.task_id}): {result.plan}"
        + (f"; follow-up tasks {follow}" if follow else "")
    )


@autolearn_app.command("dismiss")
def dismiss_command(
    ctx: typer.Context,
    rec_id: int = typer.Argument(..., help="The recommendation id."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the history)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Dismiss a recommendation; it is not proposed again while its data stays the same."""
    rec = state(ctx).library().dismiss_recommendation(rec_id, reason)
    if as_json:
        emit_json(rec.to_dict())
        return
    _say(f"dismissed #{rec.id}: {rec.dismissed_reason}")


@autolearn_app.command("history")
def history_command(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", help="How many to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Applied, dismissed and superseded recommendations, with their verdicts."""
    library = state(ctx).library()
    recs = library.recommendations(
        statuses=("applied", "dismissed", "superseded"), limit=max(limit, 1)
    )
    blocked = library.blocked_recommendations()
    if as_json:
        emit_json({"recommendations": [r.to_dict() for r in recs], "blocked": blocked})
        return
    if not recs:
        _say("no recommendation has been applied or dismissed yet")
    for rec in recs:
        verdict = (
            f"verdict {rec.verdict}: {rec.verdict_detail}"
            if rec.verdict
            else rec.dismissed_reason or rec.superseded_reason or "not judged yet"
        )
        _say(f"#{rec.id} [{rec.status}] {rec.kind}: {rec.statement}")
        _say(f"    {verdict}")
    for kind, why in blocked.items():
        _say(f"no longer proposing {kind}: {why}")


@autolearn_app.command("plan")
def plan_command(
    ctx: typer.Context,
    media_ids: list[int] = typer.Option(
        [], "--media", help="Also ask for missing metadata of this item (repeatable)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ask the configured LLM for an ordered plan; its valid steps become recommendations."""
    library = state(ctx).library()
    report = library.plan(media_ids=media_ids)
    if as_json:
        emit_json(report.to_dict())
    else:
        _say(f"plan from {report.model}: {len(report.stored)} steps stored as recommendations")
        for rec in library.recommendations():
            if rec.id in report.stored:
                _render_rec(rec)
    if report.rejected:
        reasons = "; ".join(f"{step} {reason}" for step, reason in report.rejected)
        raise InvalidInput(f"{len(report.rejected)} step(s) of the plan refused: {reasons}")


@autolearn_app.command("run")
def run_command(
    ctx: typer.Context,
    auto: bool = typer.Option(
        False, "--auto", help="Also apply the safe recommendations (queueing missing work)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """One cycle: judge, find insights, recommend (and apply the safe ones); what changed."""
    result = state(ctx).library().autolearn(auto=auto)
    if as_json:
        emit_json(result)
        return
    render_cycle(result)


def render_cycle(result: dict[str, Any]) -> None:
    """The short report of one cycle."""
    since = result.get("previous_run_at")
    _say(
        f"autolearn (task {result.get('task_id')}): {len(result['insights'])} insights"
        + (f"; since the last run at {since}:" if since else "; first run")
    )
    for key in result["new_insights"]:
        _say(f"  new: {key}")
    for key in result["resolved_insights"]:
        _say(f"  resolved: {key}")
    recs = result["recommendations"]
    _say(
        f"  recommendations: {len(recs['made'])} made, {len(recs['kept'])} kept, "
        f"{len(recs['superseded'])} superseded"
    )
    for kind, why in recs["blocked"].items():
        _say(f"  no longer proposing {kind}: {why}")
    for judged in result["judged"]:
        _say(f"  judged #{judged['id']} {judged['kind']}: {judged['verdict']} ({judged['detail']})")
    for applying in result["auto_applied"]:
        _say(f"  applied #{applying['recommendation_id']} as task {applying['task_id']}")


def register(app: typer.Typer) -> None:
    app.add_typer(autolearn_app, name="autolearn")
