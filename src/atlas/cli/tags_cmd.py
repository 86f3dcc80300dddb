"""``atlas media-tags list|add|remove|retag|train|tuning``: see, edit and automatically set tags."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import typer
from rich.markup import escape
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, progress_bar, state
from atlas.media import Tag
from atlas.tagging import (
    MediaTags,
    RetagReport,
    TagEdit,
)

tags_app = typer.Typer(
    help="See and edit an item's tags, or let the automatic tagger set them.",
    no_args_is_help=True,
)

_TARGET_HELP = "A media id, or the path of an ingested file."
_EXPLAIN = typer.Option(False, "--explain", help="Say why each tag was given.")


@tags_app.command("list")
def list_command(
    ctx: typer.Context,
    target: str = typer.Argument(..., help=_TARGET_HELP),
    explain: bool = _EXPLAIN,
    as_json: bool = JSON_OPTION,
) -> None:
    """List an item's tags with their source (user, rule, auto) and confidence."""
    found = state(ctx).library().tags(target)
    if as_json:
        emit_json(found.to_dict())
        return
    _render_item(found, explain=explain)


@tags_app.command("add")
def add_command(
    ctx: typer.Context,
    target: str = typer.Argument(..., help=_TARGET_HELP),
    tags: list[str] = typer.Argument(..., help="Tags to add."),
    kind: str | None = typer.Option(
        None,
        "--kind",
        help="genre, topic or keyword (default: the vocabulary's kind, or the library's, "
        "else topic).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add tags as yours (an automatic tag added again is confirmed); Atlas learns from it."""
    edit = state(ctx).library().add_tags(target, tags, kind=kind)
    _render_edit(edit, as_json)


@tags_app.command("remove")
def remove_command(
    ctx: typer.Context,
    target: str = typer.Argument(..., help=_TARGET_HELP),
    tags: list[str] = typer.Argument(..., help="Tags to remove."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove tags; the tagger and learned rules never add them back to this item."""
    edit = state(ctx).library().remove_tags(target, tags)
    _render_edit(edit, as_json)


@tags_app.command("retag")
def retag_command(
    ctx: typer.Context,
    targets: list[str] | None = typer.Argument(None, help="Media ids or paths of ingested files."),
    all_media: bool = typer.Option(False, "--all", help="Every item in the library."),
    untagged: bool = typer.Option(False, "--untagged", help="Every item without any tag."),
    force: bool = typer.Option(
        False, "--force", help="Tag again even when the item's input is unchanged."
    ),
    explain: bool = _EXPLAIN,
    batch: int | None = typer.Option(
        None, "--batch", help="Items per task (default: tagging.batch_size)."
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="With a task queue: wait for the workers to finish."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the automatic tagger (zero-shot, keyphrases, neighbours, profiles, fine-tuned, rules)."""
    library = state(ctx).library()
    with progress_bar("tagging", unit="items", disable=as_json) as bar:
        report = library.retag(
            targets=targets or [],
            all_media=all_media,
            untagged=untagged,
            force=force,
            batch_size=batch,
            wait=wait,
            on_start=bar.start,
            on_progress=bar.advance,
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        _render_report(report, explain=explain)
    for reason in dict.fromkeys(report.failed_tasks):
        typer.echo(f"atlas: {reason}", err=True)
    if report.failed_tasks:
        raise typer.Exit(1)


@tags_app.command("train")
def train_command(
    ctx: typer.Context,
    epochs: int | None = typer.Option(
        None, "--epochs", help="Passes over the tagged items (default: tagging.tune_epochs)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Fine-tune the tagger's text model on your confirmed tags (minutes; retag uses it)."""
    library = state(ctx).library()
    with progress_bar("training", unit="steps", disable=as_json) as bar:
        shown = 0

        def advance(done: int, total: int) -> None:
            nonlocal shown
            if shown == 0:
                bar.start(total)
            bar.advance(done - shown)
            shown = done

        outcome = library.train_tagger(epochs=epochs, on_progress=advance)
    if not outcome.ok:
        typer.echo(f"atlas: {outcome.error or outcome.status}", err=True)
        raise typer.Exit(1)
    result = dict(outcome.result or {})
    if as_json:
        emit_json({"task_id": outcome.task_id, **result})
        return
    console.print(
        f"Fine-tuned the tagger on {result.get('items')} items and {result.get('tags')} tags "
        f"({result.get('epochs')} epochs, top {result.get('layers')} layers, "
        f"{result.get('seconds')} s). New tagging uses it; "
        f"`atlas media-tags retag --all --force` re-tags the items tagged before."
    )


@tags_app.command("tuning")
def tuning_command(
    ctx: typer.Context,
    refresh: bool = typer.Option(
        False, "--refresh", help="Learn again from the confirmed items now."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """What the tagger learned on your library: which source it trusts, and why."""
    library = state(ctx).library()
    tuning = library.tuning(refresh=refresh)
    self_tune = library.settings.tagging.self_tune
    if as_json:
        emit_json({"self_tune": self_tune, "tuning": tuning and tuning.to_dict()})
        return
    if tuning is None:
        console.print("Nothing learned yet: `atlas media-tags tuning --refresh` learns now.")
        return
    found = tuning.learned
    used = "in use" if tuning.in_use and self_tune else "not in use"
    console.print(
        escape(
            f"Tuning learned {tuning.created_at:%Y-%m-%d %H:%M} on {found.items} items with "
            f"confirmed genres ({found.genres} genres): {found.status}, {used}."
        ),
        soft_wrap=True,
    )
    console.print(escape(found.reason), soft_wrap=True)
    if not self_tune:
        console.print("tagging.self_tune is off: the configured weights are used.")
    scores = found.scores
    table = Table(title="Sources", title_justify="left")
    for column in ("source", "weight", "genre micro-F1 alone (cross-validated)"):
        table.add_column(column)
    alone = scores.get("sources") or {}
    for name, weight in found.weights.items():
        score = alone.get(name)
        table.add_row(
            name.replace("_", "-"),
            f"{float(weight):g}",
            f"{score:.3f}" if isinstance(score, int | float) else "not learned here",
        )
    console.print(table)
    if "prior" in scores:
        console.print(
            f"threshold {found.threshold:g}, genre floor {found.genre_floor:g}; "
            f"genre micro-F1 over {scores.get('folds')} folds: shipped values "
            f"{scores['prior']:.3f}, learned {scores.get('learned', 0.0):.3f}"
        )
        prior_folds, learned_folds = scores.get("prior_folds"), scores.get("learned_folds")
        if prior_folds and learned_folds:
            console.print(
                "each fold apart: shipped values "
                + " ".join(f"{f:.3f}" for f in prior_folds)
                + ", learned "
                + " ".join(f"{f:.3f}" for f in learned_folds)
            )


# --- rendering -----------------------------------------------------------------------


def tag_cell(tag: Tag) -> str:
    """``Space (user)``, ``Drama (auto 0.41)``."""
    if tag.source == "user":
        return f"{tag.tag} (user)"
    return f"{tag.tag} ({tag.source} {tag.confidence:.2f})"


def _explain_lines(tags: Sequence[Tag]) -> None:
    for tag in tags:
        why = tag.explanation or "no explanation stored"
        console.print(
            escape(f"  {tag.tag} ({tag.kind}, {tag.source} {tag.confidence:.2f}): {why}"),
            soft_wrap=True,
        )


def _render_item(found: MediaTags, *, explain: bool) -> None:
    name = found.title or found.path or ""
    console.print(escape(f"media {found.media_id}: {name}"), soft_wrap=True)
    if not found.tags:
        console.print(
            f"no tags yet; let Atlas suggest some: atlas media-tags retag {found.media_id}"
        )
        return
    if explain:
        _explain_lines(found.tags)
        return
    table = Table()
    for column in ("tag", "kind", "source", "confidence"):
        table.add_column(column, overflow="fold")
    for tag in found.tags:
        table.add_row(escape(tag.tag), tag.kind, tag.source, f"{tag.confidence:.2f}")
    console.print(table)


def _render_edit(edit: TagEdit, as_json: bool) -> None:
    if as_json:
        emit_json(edit.to_dict())
        return
    for change in edit.report.changes:
        parts = []
        if change.added:
            parts.append("added " + ", ".join(change.added))
        if change.confirmed:
            parts.append("confirmed " + ", ".join(change.confirmed))
        if change.removed:
            parts.append("removed " + ", ".join(change.removed))
        typer.echo(f"media {edit.media.media_id}: " + "; ".join(parts))
    if not edit.report.changes:
        typer.echo(f"media {edit.media.media_id}: nothing changed (already your tags)")
    typer.echo("tags: " + (", ".join(tag_cell(tag) for tag in edit.media.tags) or "none"))


def _render_report(report: RetagReport, *, explain: bool) -> None:
    shown = [item for item in report.items if item.status != "error"]
    if shown and not explain:
        table = Table(title="Tagging", title_justify="left")
        for column in ("id", "title", "status", "tags"):
            table.add_column(column, overflow="fold")
        for item in shown:
            table.add_row(
                str(item.media_id),
                escape(item.title or ""),
                item.status,
                escape(", ".join(tag_cell(tag) for tag in item.tags)),
            )
        console.print(table)
    if explain:
        for item in shown:
            console.print(
                escape(f"media {item.media_id}: {item.title or ''} ({item.status})"),
                soft_wrap=True,
            )
            _explain_lines(item.tags)
    # What the tagger says of the whole library (learned cut-offs, too few tagged
    # neighbours) comes with every item: say it once.
    counts = Counter(note for item in shown for note in item.notes)
    for note, count in counts.items():
        if count > 1:
            console.print(escape(f"{count} items: {note}"), soft_wrap=True)
    for item in shown:
        for note in item.notes:
            if counts[note] == 1:
                console.print(escape(f"media {item.media_id}: {note}"), soft_wrap=True)
        if item.removed:
            stale = ", ".join(item.removed)
            console.print(escape(f"media {item.media_id}: replaced {stale}"), soft_wrap=True)
    if report.tuning:
        console.print(escape(f"tuning on your library: {report.tuning}"), soft_wrap=True)
    summary = ", ".join(f"{n} {status}" for status, n in report.summary().items())
    console.print(f"{len(report.items)} item(s): {summary or 'nothing to do'}")
    queued = report.count("queued")
    if queued:
        console.print(f"queued {queued} item(s) for `atlas worker`")


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="media-tags")
