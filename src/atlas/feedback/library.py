"""Rules on items already stored: ``run-feedback-loop`` applies them to automatic tags,
genres, and with ``--move-files`` files."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from atlas.db import database_errors, utcnow
from atlas.db.tables import media
from atlas.errors import AtlasError
from atlas.feedback.applications import (
    Application,
    application_state,
    count_usage,
    insert_application,
    record_tag_effects,
)
from atlas.feedback.context import (
    MediaContext,
    chunked,
    load_contexts,
)
from atlas.feedback.engine import (
    RuleIndex,
    genre_effect,
    move_effect,
    plan_tag_effects,
)
from atlas.feedback.rules import Rule
from atlas.media.files import moving, plan_move, store_move
from atlas.media.tags import remove_tags, upsert_tags

__all__ = [
    "ApplyReport",
    "apply_to_library",
]


# --- on stored items ------------------------------------------------------------------


@dataclass
class ApplyReport:
    applications: list[Application] = field(default_factory=list)
    #: Organisation rules' moves not done (no ``--move-files``, or a dry run).
    suggested_moves: list[Application] = field(default_factory=list)
    #: Moves that could not be done, with the reason.
    skipped_moves: list[str] = field(default_factory=list)
    items_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "items_checked": self.items_checked,
            "applications": [a.to_dict() for a in self.applications],
            "suggested_moves": [a.to_dict() for a in self.suggested_moves],
            "skipped_moves": self.skipped_moves,
        }


def apply_to_library(
    engine: Engine,
    rules: Sequence[Rule],
    *,
    dry_run: bool = False,
    move_files: bool = False,
    media_ids: Sequence[int] | None = None,
    on_progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> ApplyReport:
    """Apply ``rules`` (the enabled ones) to the items already stored.

    Tag rules act on items that still hold automatic tags (an item whose tags the
    user set in full is left alone) and never touch a user's tag or re-add a
    rejected one; genre rules act on genres the user never set; organisation rules
    move files only with ``move_files`` (else they are reported as suggestions),
    never a file the user moved. Idempotent: each rule acts once per item.
    One transaction per batch of 500 items; a dry run writes nothing.
    """
    now = now or utcnow()
    index = RuleIndex(rules)
    report = ApplyReport()
    if not len(index):
        return report
    with database_errors(engine), engine.connect() as connection:
        if media_ids is None:
            ids = list(connection.execute(select(media.c.id).order_by(media.c.id)).scalars())
        else:
            ids = sorted(set(media_ids))
    moves: list[tuple[MediaContext, Rule, str]] = []
    for batch in chunked(ids):
        with database_errors(engine):
            if dry_run:
                with engine.connect() as connection:
                    _apply_batch(connection, index, batch, report, moves, dry_run=True, now=now)
            else:
                with engine.begin() as connection:
                    _apply_batch(connection, index, batch, report, moves, dry_run=False, now=now)
        report.items_checked += len(batch)
        if on_progress is not None:
            on_progress(len(batch))
    for context, rule, folder in moves:
        planned = Application(
            id=None,
            rule_id=rule.id,
            media_id=context.media_id,
            target="path",
            before={"path": context.path},
            after={"path": os.path.join(folder, os.path.basename(context.path or ""))},
            via="loop",
            applied_at=now,
            title=context.title,
        )
        if dry_run or not move_files or rule.id is None:
            report.suggested_moves.append(planned)
            continue
        try:
            report.applications.append(_move_by_rule(engine, context, rule, folder, now))
        except AtlasError as exc:  # one file that cannot move does not stop the others
            report.skipped_moves.append(f"media {context.media_id}: {exc.message}")
    return report


def _apply_batch(
    connection: Connection,
    index: RuleIndex,
    batch: list[int],
    report: ApplyReport,
    moves: list[tuple[MediaContext, Rule, str]],
    *,
    dry_run: bool,
    now: datetime,
) -> None:
    contexts = load_contexts(connection, batch, words=index.uses_words)
    live, blocked = application_state(connection, batch)
    writer = None if dry_run else connection
    usage: Counter[int] = Counter()
    for media_id in batch:
        context = contexts.get(media_id)
        if context is None:
            continue
        reversed_rules = blocked.get(media_id, set())
        if any(state.source == "auto" for state in context.tags.values()):
            effects = plan_tag_effects(index, context, context.tags, blocked=reversed_rules)
            if effects and writer is not None:
                removed = [s.norm for effect in effects for s in effect.removed]
                remove_tags(writer, media_id, removed, sources=["auto"])
                upsert_tags(writer, media_id, [s for e in effects for s in e.added])
            report.applications += record_tag_effects(
                writer, context, effects, live, via="loop", now=now
            )
        change = genre_effect(index, context, blocked=reversed_rules)
        if change is not None:
            rule, genre = change
            application = Application(
                id=None,
                rule_id=rule.id,
                media_id=media_id,
                target="genre",
                before={"genre": context.genre},
                after={"genre": genre},
                via="loop",
                applied_at=now,
                title=context.title,
            )
            if writer is not None and rule.id is not None:
                writer.execute(
                    update(media).where(media.c.id == media_id).values(genre=genre, updated_at=now)
                )
                application = insert_application(writer, application)
                usage[rule.id] += 1
            report.applications.append(application)
        move = move_effect(index, context, blocked=reversed_rules)
        if move is not None:
            moves.append((context, move[0], move[1]))
    if writer is not None:
        count_usage(writer, usage)


def _move_by_rule(
    engine: Engine, context: MediaContext, rule: Rule, folder: str, now: datetime
) -> Application:
    with engine.connect() as connection:
        plan = plan_move(connection, context.media_id, folder)
    with moving(plan), engine.begin() as connection:
        store_move(connection, plan)
        application = insert_application(
            connection,
            Application(
                id=None,
                rule_id=rule.id,
                media_id=context.media_id,
                target="path",
                before={
                    "path": str(plan.source),
                    "sidecars": [str(old) for old, _new in plan.sidecars],
                },
                after={
                    "path": str(plan.target),
                    "sidecars": [str(new) for _old, new in plan.sidecars],
                },
                via="loop",
                applied_at=now,
                title=context.title,
            ),
        )
        count_usage(connection, Counter({rule.id or 0: 1}))
    return application
