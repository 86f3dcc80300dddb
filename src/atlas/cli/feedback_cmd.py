"""``atlas track-tag-edits``, ``atlas run-feedback-loop`` and ``atlas rules ...``."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, state
from atlas.db.tables import RULE_OUTCOMES
from atlas.errors import InvalidInput
from atlas.feedback import (
    EditReport,
    Judgement,
    Rule,
)

rules_app = typer.Typer(help="Inspect, switch and undo learned rules.", no_args_is_help=True)


def track_tag_edits_command(
    ctx: typer.Context,
    media_id: int = typer.Option(..., "--media", help="The media id."),
    tags: str | None = typer.Option(
        None, "--tags", help='The corrected full tag set, e.g. "Action, Sci-fi, Robot".'
    ),
    genre: str | None = typer.Option(None, "--genre", help="The corrected genre."),
    rating: float | None = typer.Option(None, "--rating", help="A rating, 0 to 5 in halves."),
    confidence: float = typer.Option(
        1.0, "--confidence", help="How sure you are, 0 to 1 (weighs the correction)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Correct an item's tags, genre or rating; Atlas learns from each correction."""
    report = (
        state(ctx)
        .library()
        .correct(
            media_id,
            tags=tags,
            genre=genre,
            rating=rating,
            confidence=confidence,
        )
    )
    if as_json:
        emit_json(report.to_dict())
        return
    render_edit(report)


def render_edit(report: EditReport) -> None:
    """Print what an edit changed and which rule applications it judged."""
    for change in report.changes:
        prefix = f"media {report.media_id}: {change.name}"
        if change.name != "tags":
            if change.changed:
                _say(f"{prefix} {change.before!r} -> {change.after!r}")
            else:
                _say(f"{prefix} {change.after!r} confirmed")
            continue
        parts = []
        replaced = {new: old for old, new in change.replaced}
        if change.removed:
            parts.append("removed " + ", ".join(change.removed))
        for tag in change.added:
            parts.append(
                f"added {tag}" + (f" (replacing {replaced[tag]})" if tag in replaced else "")
            )
        if change.confirmed:
            parts.append("confirmed " + ", ".join(change.confirmed))
        _say(f"{prefix}: " + ("; ".join(parts) or "no change"))
    _render_judged(report.judged)


def _render_judged(judged: list[Judgement]) -> None:
    if not judged:
        return
    kept = sum(1 for j in judged if j.outcome == "kept")
    _say(f"rule applications judged: {kept} kept, {len(judged) - kept} reverted")
    for reason in sorted({(j.rule_id, j.disabled_reason) for j in judged if j.disabled_reason}):
        _say(f"rule {reason[0]} {reason[1]}")


def run_feedback_loop_command(
    ctx: typer.Context,
    analyze_only: bool = typer.Option(
        False, "--analyze-only", help="Only mine and show the patterns; change nothing."
    ),
    apply_rules: bool = typer.Option(
        False, "--apply-rules", help="Only apply the existing rules (no mining)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show exactly what would change, and change nothing."
    ),
    min_frequency: int | None = typer.Option(
        None,
        "--min-frequency",
        help="Items a correction must be seen on to count (default: feedback.min_frequency).",
    ),
    move_files: bool = typer.Option(
        False, "--move-files", help="Let file organisation rules move files (else: suggest)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Learn rules from corrections and apply them (no flag: mine, update rules, apply)."""
    result = (
        state(ctx)
        .library()
        .feedback_loop(
            analyze_only=analyze_only,
            apply_rules=apply_rules,
            dry_run=dry_run,
            min_frequency=min_frequency,
            move_files=move_files,
        )
    )
    if as_json:
        emit_json(result)
        return
    render_loop(result)


def render_loop(result: dict[str, Any]) -> None:
    """Print a loop report (the ``feedback-loop`` task's result) in plain words."""
    say = _say
    if result["dry_run"]:
        say("dry run: nothing was changed; this is what the loop would do")
    mining = result.get("mining")
    if mining is not None:
        patterns = mining["patterns"]
        say(
            f"feedback: {mining['feedback_rows']} rows about {mining['items']} items, mined in "
            f"{mining['seconds']:.2f} s; {mining['patterns_found']} patterns corrected on at "
            f"least {mining['min_frequency']} items, {mining['qualifying']} with confidence >= "
            f"{mining['min_confidence']:.2f}"
        )
        if result["mode"] == "analyze":
            for pattern in patterns:
                mark = "rule" if pattern["qualifies"] else "weak"
                say(f"  [{mark}] {pattern['rule_type']}: {pattern['description']}")
            if len(patterns) < mining["patterns_found"]:
                say(f"  ... and {mining['patterns_found'] - len(patterns)} weaker ones")
        for line in mining.get("contradictions", ()):
            say(f"not learned: {line}")
    rules = result.get("rules")
    if rules is not None:
        for name, title in (
            ("created", "new rules"),
            ("updated", "updated rules"),
            ("reenabled", "rules enabled again (the evidence is back)"),
            ("disabled", "rules disabled"),
        ):
            if rules[name]:
                say(f"{title} ({len(rules[name])}):")
                for rule in rules[name]:
                    ident = f"rule {rule['id']}" if rule["id"] is not None else "new rule"
                    line = f"  {ident} {rule['rule_type']}: {rule['description']}"
                    if name == "disabled":
                        line += f" -- {rule['disabled_reason']}"
                    say(line)
    applied = result.get("applied")
    if applied is not None:
        changes = applied["applications"]
        verb = "would change" if result["dry_run"] else "changed"
        items = len({change["media_id"] for change in changes})
        say(
            f"rules ({result['enabled_rules']} enabled) {verb} {items} of "
            f"{applied['items_checked']} items ({len(changes)} changes)"
        )
        for change in changes:
            rule = f"rule {change['rule_id']}" if change["rule_id"] is not None else "new rule"
            say(f"  media {change['media_id']} {_title(change)}: {change['change']} ({rule})")
        if applied["suggested_moves"]:
            say("suggested moves (run with --move-files to move):")
            for move in applied["suggested_moves"]:
                say(f"  media {move['media_id']} {_title(move)}: {move['change']}")
        for reason in applied["skipped_moves"]:
            say(f"  move skipped: {reason}")
    for rule in result.get("judged_off", []):
        say(f"rule {rule['id']} ({rule['rule_type']}) is off: {rule['disabled_reason']}")


def _say(text: str) -> None:
    typer.echo(text)  # plain lines: no wrapping, no markup


def _title(change: dict[str, Any]) -> str:
    return f"{change['title']!r}" if change.get("title") else ""


# --- rules ----------------------------------------------------------------------------


def _status(rule: Rule) -> str:
    if rule.enabled:
        return "enabled"
    return f"off ({rule.disabled_by})" if rule.disabled_by else "off"


def _success(rule: Rule) -> str:
    if not rule.judged:
        return "-"
    return f"{rule.success_count}/{rule.judged}"


@rules_app.command("list")
def rules_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List learned rules with their evidence, usage and measured success."""
    rules = state(ctx).library().rules()
    if as_json:
        emit_json([rule.to_dict() for rule in rules])
        return
    if not rules:
        _say(
            "no rules yet; correct some items (atlas track-tag-edits), "
            "then run: atlas run-feedback-loop"
        )
        return
    table = Table(title=f"Rules ({len(rules)})", title_justify="left")
    for column in ("id", "type", "status", "conf", "support", "used", "kept", "rule"):
        table.add_column(column, overflow="fold")
    for rule in rules:
        text = rule.description
        if not rule.enabled and rule.disabled_reason:
            text += f" -- {rule.disabled_reason}"
        table.add_row(
            str(rule.id),
            rule.rule_type,
            _status(rule),
            f"{rule.confidence:.2f}",
            str(rule.support),
            str(rule.usage_count),
            _success(rule),
            escape(text),
        )
    console.print(table)


@rules_app.command("show")
def rules_show(
    ctx: typer.Context,
    rule_id: int = typer.Argument(..., help="The rule id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one rule: its condition, action, evidence and recent applications."""
    detail = state(ctx).library().rule(rule_id)
    if as_json:
        emit_json(detail.to_dict())
        return
    rule, applications = detail.rule, detail.applications
    _say(f"rule {rule.id} ({rule.rule_type}), {_status(rule)}")
    _say(f"  {rule.description}")
    if rule.disabled_reason:
        _say(f"  why off: {rule.disabled_reason}")
    _say(f"  condition: {json.dumps(rule.condition, ensure_ascii=False)}")
    _say(f"  action: {json.dumps(rule.action, ensure_ascii=False)}")
    rate = f"{rule.success_rate:.2f}" if rule.success_rate is not None else "not judged yet"
    _say(
        f"  applied {rule.usage_count} times; judged {rule.judged}: {rule.success_count} kept, "
        f"{rule.failure_count} reverted (success rate {rate})"
    )
    for application in applications:
        _say(
            f"  application {application.id}: media {application.media_id} "
            f"{application.summary()} [{application.outcome}, via {application.via}]"
        )


@rules_app.command("enable")
def rules_enable(
    ctx: typer.Context,
    rule_id: int = typer.Argument(..., help="The rule id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Switch a rule on (also one Atlas switched off)."""
    rule = state(ctx).library().set_rule(rule_id, True)
    if as_json:
        emit_json(rule.to_dict())
    else:
        _say(f"rule {rule.id} enabled: {rule.description}")


@rules_app.command("disable")
def rules_disable(
    ctx: typer.Context,
    rule_id: int = typer.Argument(..., help="The rule id."),
    reason: str | None = typer.Option(None, "--reason", help="Why (shown with the rule)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Switch a rule off; it stays off until you enable it."""
    rule = state(ctx).library().set_rule(rule_id, False, reason=reason)
    if as_json:
        emit_json(rule.to_dict())
    else:
        _say(f"rule {rule.id} disabled: {rule.description}")


@rules_app.command("undo")
def rules_undo(
    ctx: typer.Context,
    application_id: int = typer.Argument(..., help="The application id (see rules applications)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Undo one application of a rule, if the item has not changed since."""
    report = state(ctx).library().undo(application_id)
    if as_json:
        emit_json(report.to_dict())
        return
    application = report.application
    _say(
        f"undid application {application.id} of rule {application.rule_id} on media "
        f"{application.media_id}: {application.summary()}"
    )
    if report.disabled_reason:
        _say(f"rule {application.rule_id} {report.disabled_reason}")


@rules_app.command("applications")
def rules_applications(
    ctx: typer.Context,
    rule_id: int | None = typer.Option(None, "--rule", help="Only this rule's."),
    media_id: int | None = typer.Option(None, "--media", help="Only on this item."),
    outcome: str | None = typer.Option(None, "--outcome", help="pending, kept or reverted."),
    limit: int = typer.Option(50, "--limit", help="How many to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List what rules changed, newest first, with how the user judged it."""
    if outcome is not None and outcome not in RULE_OUTCOMES:
        raise InvalidInput(f"unknown outcome {outcome!r}; use {', '.join(RULE_OUTCOMES)}")
    if limit < 1:
        raise InvalidInput("--limit must be at least 1")
    applications = (
        state(ctx)
        .library()
        .applications(rule_id=rule_id, media_id=media_id, outcome=outcome, limit=limit)
    )
    if as_json:
        emit_json([a.to_dict() for a in applications])
        return
    if not applications:
        _say("no rule applications yet")
        return
    table = Table(title="Rule applications", title_justify="left")
    for column in ("id", "rule", "media", "change", "via", "outcome", "applied"):
        table.add_column(column, overflow="fold")
    for a in applications:
        table.add_row(
            str(a.id),
            str(a.rule_id),
            f"{a.media_id} {a.title or ''}".strip(),
            escape(a.summary()),
            a.via,
            a.outcome + (" (undone)" if a.undone_at else ""),
            a.applied_at.strftime("%Y-%m-%d %H:%M") if a.applied_at else "",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("track-tag-edits")(track_tag_edits_command)
    app.command("run-feedback-loop")(run_feedback_loop_command)
    app.add_typer(rules_app, name="rules")
