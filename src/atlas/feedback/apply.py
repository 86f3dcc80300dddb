"""Applying rules, recording every application, judging it by the user's next edit, undoing it.

Two ways rules act:

* :func:`apply_rules` — the automatic tagger calls it with each new prediction set
  of an item, inside the transaction that stores the tags;
* :func:`apply_to_library` — ``run-feedback-loop`` applies the rules to items
  already stored (their automatic tags, genres, and with ``--move-files`` files).

Either way each change is a ``rule_applications`` row (rule, item, before, after,
time) with outcome ``pending``, and the rule's ``usage_count`` grows. The user's
next edit of the item judges it (:func:`judge_edit`, called in the edit's
transaction): ``reverted`` when the edit undoes the rule's effect, ``kept`` when it
leaves it. Only judged applications count towards ``success_rate``; a rule that
falls below ``feedback.disable_below`` after ``feedback.min_judged`` judgements is
disabled. A rule the user reversed on an item never acts on that item again.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, func, insert, select, update

from atlas.config import FeedbackSettings
from atlas.db import check_id, database_errors, utcnow
from atlas.db.tables import learning_rules, media, rule_applications
from atlas.errors import AtlasError, Conflict, NotFound
from atlas.feedback.context import (
    MediaContext,
    TagState,
    chunked,
    current_tags,
    load_contexts,
    normalise_genre,
)
from atlas.feedback.engine import (
    RuleIndex,
    TagEffect,
    genre_effect,
    move_effect,
    plan_tag_effects,
)
from atlas.feedback.records import insert_feedback, reject_tags, tag_values
from atlas.feedback.rule_store import get_rule, load_rules, score_rule
from atlas.feedback.rules import TAG_RULE_TYPES, Rule
from atlas.media.files import moving, plan_move, store_move
from atlas.media.tags import Tag, remove_tags, upsert_tags

__all__ = [
    "Application",
    "ApplyReport",
    "Judgement",
    "RuleResult",
    "UndoReport",
    "apply_rules",
    "apply_to_library",
    "judge_edit",
    "list_applications",
    "live_rule_effects",
    "rule_detail",
    "undo_application",
]

_UNSET: Any = object()


@dataclass(frozen=True)
class Application:
    """One change one rule made to one item."""

    id: int | None
    rule_id: int | None
    media_id: int
    target: str  # tags | genre | path
    before: dict[str, Any]
    after: dict[str, Any]
    via: str
    outcome: str = "pending"
    applied_at: datetime | None = None
    judged_at: datetime | None = None
    undone_at: datetime | None = None
    title: str | None = None

    @property
    def removed_tags(self) -> list[TagState]:
        after = {tag["norm"] for tag in self.after.get("tags", [])}
        return [
            TagState.from_json(t) for t in self.before.get("tags", []) if t["norm"] not in after
        ]

    @property
    def added_tags(self) -> list[TagState]:
        before = {tag["norm"] for tag in self.before.get("tags", [])}
        return [
            TagState.from_json(t) for t in self.after.get("tags", []) if t["norm"] not in before
        ]

    def summary(self) -> str:
        """The change in a few words: ``- sci-fi, + science fiction``."""
        if self.target == "tags":
            parts = [f"- {t.tag}" for t in self.removed_tags]
            parts += [f"+ {t.tag}" for t in self.added_tags]
            return ", ".join(parts)
        if self.target == "genre":
            return f"genre {self.before.get('genre')!r} -> {self.after.get('genre')!r}"
        return f"move {self.before.get('path')} -> {self.after.get('path')}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "media_id": self.media_id,
            "title": self.title,
            "target": self.target,
            "change": self.summary(),
            "before": self.before,
            "after": self.after,
            "via": self.via,
            "outcome": self.outcome,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "judged_at": self.judged_at.isoformat() if self.judged_at else None,
            "undone_at": self.undone_at.isoformat() if self.undone_at else None,
        }

    @classmethod
    def from_row(cls, row: Any, title: str | None = None) -> Application:
        return cls(
            id=row.id,
            rule_id=row.rule_id,
            media_id=row.media_id,
            target=row.target,
            before=row.before,
            after=row.after,
            via=row.via,
            outcome=row.outcome,
            applied_at=row.applied_at,
            judged_at=row.judged_at,
            undone_at=row.undone_at,
            title=title,
        )


class RuleResult(NamedTuple):
    """What :func:`apply_rules` returns: the tags to store, and the applications recorded."""

    tags: list[Tag]
    applications: list[Application]


# --- for the tagger ----------------------------------------------------------------


def apply_rules(
    connection: Connection,
    media_id: int,
    predictions: Sequence[Tag],
    *,
    rules: RuleIndex | None = None,
    now: datetime | None = None,
) -> RuleResult:
    """Apply the enabled tag rules to a new prediction set of one item.

    Call it inside the transaction that stores the item's new automatic tags, and
    store exactly the returned tags (``upsert_tags``; predictions come back as given,
    rule tags with source ``rule``). What it guarantees:

    * predictions the user removed from this item before (rejections) are dropped;
    * predictions of tags the user (or a rule) already set are left to that tag;
    * rules change only automatic tags, never add a rejected tag, and a rule the
      user reversed on this item does not act on it again;
    * each rule that changes the prediction set is recorded as an application
      (``via`` ``tagger``) and counted in ``usage_count``; when the same rule already
      has a live application on this item (an earlier tagging), none is added.

    ``rules``: a prepared :class:`RuleIndex` to reuse over a batch (else loaded).
    Raises ``NotFound`` for an unknown item.
    """
    now = now or utcnow()
    check_id(media_id)
    context = load_contexts(connection, [media_id]).get(media_id)
    if context is None:
        raise NotFound(f"no media with id {media_id}")
    index = rules if rules is not None else tag_rule_index(connection)
    live, blocked = _application_state(connection, [media_id])

    working = {norm: state for norm, state in context.tags.items() if state.source != "auto"}
    predicted: dict[str, TagState] = {}
    for tag in predictions:
        norm = tag.norm
        if not norm or norm in context.rejected or norm in working or norm in predicted:
            continue
        predicted[norm] = TagState(
            tag=tag.tag,
            norm=norm,
            kind=tag.kind,
            source="auto",
            confidence=tag.confidence,
            explanation=tag.explanation,
        )
    working.update(predicted)
    effects = plan_tag_effects(index, context, working, blocked=blocked.get(media_id, set()))

    removed = {state.norm for effect in effects for state in effect.removed}
    result = [_as_tag(state) for norm, state in predicted.items() if norm not in removed]
    result += [_as_tag(state) for effect in effects for state in effect.added]
    recorded = _record_tag_effects(connection, context, effects, live, via="tagger", now=now)
    return RuleResult(result, recorded)


def tag_rule_index(connection: Connection) -> RuleIndex:
    """The enabled tag rules, ready for :func:`apply_rules` over a batch of items."""
    return RuleIndex(load_rules(connection, enabled_only=True, types=TAG_RULE_TYPES))


def _as_tag(state: TagState) -> Tag:
    return Tag(
        tag=state.tag,
        kind=state.kind,
        source=state.source,
        confidence=state.confidence,
        explanation=state.explanation,
    )


def _state_json(state: TagState) -> dict[str, Any]:
    return {**state.to_json(), "explanation": state.explanation}


def _application_state(
    connection: Connection, media_ids: Sequence[int]
) -> tuple[dict[tuple[int, int], int], dict[int, set[int]]]:
    """(live applications by (media, rule), rules reversed per media)."""
    live: dict[tuple[int, int], int] = {}
    blocked: dict[int, set[int]] = {}
    for chunk in chunked(list(media_ids)):
        rows = connection.execute(
            select(
                rule_applications.c.id,
                rule_applications.c.media_id,
                rule_applications.c.rule_id,
                rule_applications.c.outcome,
            ).where(rule_applications.c.media_id.in_(chunk))
        )
        for row in rows:
            if row.outcome == "reverted":
                blocked.setdefault(row.media_id, set()).add(row.rule_id)
            else:
                live[(row.media_id, row.rule_id)] = row.id
    return live, blocked


def _record_tag_effects(
    connection: Connection | None,
    context: MediaContext,
    effects: Sequence[TagEffect],
    live: dict[tuple[int, int], int],
    *,
    via: str,
    now: datetime,
) -> list[Application]:
    """Application rows for the effects (``connection`` None: plan only, a dry run)."""
    recorded = []
    usage: Counter[int] = Counter()
    for effect in effects:
        rule_id = effect.rule.id
        if rule_id is not None and (context.media_id, rule_id) in live:
            continue
        application = Application(
            id=None,
            rule_id=rule_id,
            media_id=context.media_id,
            target="tags",
            before={"tags": [_state_json(s) for s in effect.removed]},
            after={"tags": [_state_json(s) for s in effect.added]},
            via=via,
            applied_at=now,
            title=context.title,
        )
        if connection is not None and rule_id is not None:
            application = _insert_application(connection, application)
            live[(context.media_id, rule_id)] = application.id or 0
            usage[rule_id] += 1
        recorded.append(application)
    if connection is not None:
        _count_usage(connection, usage)
    return recorded


def _insert_application(connection: Connection, application: Application) -> Application:
    new_id = connection.execute(
        insert(rule_applications)
        .values(
            rule_id=application.rule_id,
            media_id=application.media_id,
            target=application.target,
            before=application.before,
            after=application.after,
            via=application.via,
            applied_at=application.applied_at,
            outcome="pending",
        )
        .returning(rule_applications.c.id)
    ).scalar_one()
    return Application(**{**application.__dict__, "id": int(new_id)})


def _count_usage(connection: Connection, usage: Counter[int]) -> None:
    for rule_id, count in usage.items():
        connection.execute(
            update(learning_rules)
            .where(learning_rules.c.id == rule_id)
            .values(usage_count=func.coalesce(learning_rules.c.usage_count, 0) + count)
        )


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
    live, blocked = _application_state(connection, batch)
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
                upsert_tags(writer, media_id, [_as_tag(s) for e in effects for s in e.added])
            report.applications += _record_tag_effects(
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
                application = _insert_application(writer, application)
                usage[rule.id] += 1
            report.applications.append(application)
        move = move_effect(index, context, blocked=reversed_rules)
        if move is not None:
            moves.append((context, move[0], move[1]))
    if writer is not None:
        _count_usage(writer, usage)


def _move_by_rule(
    engine: Engine, context: MediaContext, rule: Rule, folder: str, now: datetime
) -> Application:
    with engine.connect() as connection:
        plan = plan_move(connection, context.media_id, folder)
    with moving(plan), engine.begin() as connection:
        store_move(connection, plan)
        application = _insert_application(
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
        _count_usage(connection, Counter({rule.id or 0: 1}))
    return application


# --- judging ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    application_id: int
    rule_id: int
    outcome: str  # kept | reverted
    #: Set when this judgement made the rule's success rate fall too low.
    disabled_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def live_rule_effects(connection: Connection, media_id: int) -> list[TagState]:
    """Predictions that live rule applications took off this item (for feedback rows)."""
    rows = connection.execute(
        select(rule_applications.c.before, rule_applications.c.after).where(
            rule_applications.c.media_id == media_id,
            rule_applications.c.target == "tags",
            rule_applications.c.outcome != "reverted",
        )
    )
    removed: dict[str, TagState] = {}
    for before, after in rows:
        kept = {tag["norm"] for tag in after.get("tags", [])}
        for tag in before.get("tags", []):
            if tag["norm"] not in kept:
                removed[tag["norm"]] = TagState.from_json(tag)
    return list(removed.values())


def judge_edit(
    connection: Connection,
    settings: FeedbackSettings,
    media_id: int,
    *,
    feedback_id: int,
    now: datetime,
    tags_final: Collection[str] | None = None,
    genre_final: Any = _UNSET,
    moved: bool = False,
) -> list[Judgement]:
    """Judge the item's pending applications by the user's edit, in the edit's transaction.

    A tag edit (``tags_final``: the item's tag norms after it) judges tag
    applications: reverted when a tag the rule added is gone or one it removed is
    back, else kept. A genre edit (``genre_final``) judges genre applications. Any
    user edit judges a rule's move: reverted when the edit is a move (``moved``),
    kept otherwise. Updates each rule's counts and may disable it.
    """
    rows = connection.execute(
        select(rule_applications)
        .where(rule_applications.c.media_id == media_id, rule_applications.c.outcome == "pending")
        .order_by(rule_applications.c.id)
        .with_for_update()
    ).all()
    verdicts: list[tuple[Any, str]] = []
    for row in rows:
        application = Application.from_row(row)
        if application.target == "tags":
            if tags_final is None:
                continue
            final = set(tags_final)
            reverted = any(t.norm not in final for t in application.added_tags) or any(
                t.norm in final for t in application.removed_tags
            )
        elif application.target == "genre":
            if genre_final is _UNSET:
                continue
            reverted = normalise_genre(genre_final) != normalise_genre(application.after["genre"])
        else:
            reverted = moved
        verdicts.append((row, "reverted" if reverted else "kept"))
    return _settle(connection, settings, verdicts, feedback_id=feedback_id, now=now)


def _settle(
    connection: Connection,
    settings: FeedbackSettings,
    verdicts: Sequence[tuple[Any, str]],
    *,
    feedback_id: int | None,
    now: datetime,
    undone: bool = False,
) -> list[Judgement]:
    per_rule: dict[int, Counter[str]] = {}
    for row, outcome in verdicts:
        values: dict[str, Any] = {"outcome": outcome, "judged_at": now, "judged_by": feedback_id}
        if undone:
            values["undone_at"] = now
        connection.execute(
            update(rule_applications).where(rule_applications.c.id == row.id).values(**values)
        )
        counts = per_rule.setdefault(row.rule_id, Counter())
        counts[outcome] += 1
        if row.outcome == "kept":  # an undo of a kept application: it was not a success
            counts["unkept"] += 1
    reasons = {
        rule_id: score_rule(
            connection,
            settings,
            rule_id,
            kept=counts["kept"] - counts["unkept"],
            reverted=counts["reverted"],
            now=now,
        )
        for rule_id, counts in per_rule.items()
    }
    return [
        Judgement(row.id, row.rule_id, outcome, reasons.get(row.rule_id))
        for row, outcome in verdicts
    ]


# --- undo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UndoReport:
    application: Application
    feedback_id: int | None
    disabled_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "application": self.application.to_dict(),
            "feedback_id": self.feedback_id,
            "disabled_reason": self.disabled_reason,
        }


def undo_application(engine: Engine, settings: FeedbackSettings, application_id: int) -> UndoReport:
    """Restore the item as it was before the application, if it has not changed since.

    What is restored becomes the user's (tags with source ``user``, a genre or a
    location the user chose), so no other rule changes it back; tags the rule
    added are rejected on this item. Counts as the user reversing the rule (a
    failure). Raises ``NotFound`` for an unknown id and ``Conflict``, changing
    nothing, when the application was already reversed or the item has changed
    since (the message says what changed).
    """
    now = utcnow()
    with database_errors(engine), engine.connect() as connection:
        row = _application_row(connection, application_id)
    if row.target == "path":
        return _undo_move(engine, settings, row, now)
    with database_errors(engine), engine.begin() as connection:
        row = _application_row(connection, application_id, for_update=True)
        application = Application.from_row(row)
        label = f"rule {row.rule_id}"
        if row.target == "tags":
            feedback_id = _undo_tags(connection, application, label, now)
        else:
            current = connection.scalar(select(media.c.genre).where(media.c.id == row.media_id))
            if normalise_genre(current) != normalise_genre(application.after["genre"]):
                raise Conflict(
                    f"media {row.media_id} has changed since {label} was applied: its genre is "
                    f"now {current!r}; nothing was undone"
                )
            connection.execute(
                update(media)
                .where(media.c.id == row.media_id)
                .values(genre=application.before["genre"], updated_at=now)
            )
            feedback_id = insert_feedback(
                connection,
                row.media_id,
                "metadata_edit",
                {"field": "genre", "value": current},
                {"field": "genre", "value": application.before["genre"]},
                confidence=1.0,
                source="undo",
                now=now,
            )
        judged = _settle(
            connection, settings, [(row, "reverted")], feedback_id=feedback_id, now=now, undone=True
        )
        updated = Application.from_row(_application_row_any(connection, application_id))
    return UndoReport(updated, feedback_id, judged[0].disabled_reason)


def _application_row(
    connection: Connection, application_id: int, *, for_update: bool = False
) -> Any:
    check_id(application_id, "rule application", hint="see: atlas rules applications")
    query = select(rule_applications).where(rule_applications.c.id == application_id)
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(
            f"no rule application with id {application_id}; see: atlas rules applications"
        )
    if row.outcome == "reverted":
        how = "undone" if row.undone_at is not None else "reversed by the user's edit"
        raise Conflict(f"application {application_id} was already {how}; nothing to undo")
    return row


def _undo_tags(connection: Connection, application: Application, label: str, now: datetime) -> int:
    media_id = application.media_id
    current = current_tags(connection, media_id)
    for state in application.added_tags:
        holder = current.get(state.norm)
        if holder is None or holder.source != "rule":
            change = "is gone" if holder is None else f"is now set by source {holder.source!r}"
            raise Conflict(
                f"media {media_id} has changed since {label} was applied: tag '{state.tag}' "
                f"{change}; nothing was undone"
            )
    for state in application.removed_tags:
        if state.norm in current:
            raise Conflict(
                f"media {media_id} has changed since {label} was applied: tag '{state.tag}' is "
                "back; nothing was undone"
            )
    added = application.added_tags
    restored = application.removed_tags
    remove_tags(connection, media_id, [s.norm for s in added], sources=["rule"])
    # The user asked for these back: they are the user's now, so no other rule
    # takes them away again (as an undone genre or move is the user's too).
    upsert_tags(
        connection,
        media_id,
        [Tag(s.tag, kind=s.kind, source="user", explanation="restored by undo") for s in restored],
    )
    after = {**{n: s for n, s in current.items() if n not in {a.norm for a in added}}}
    after.update({s.norm: s for s in restored})
    original, corrected = tag_values(
        current,
        [s.tag for s in after.values()],
        added=[s.tag for s in restored],
        removed=[s.tag for s in added],
        confirmed=[],
        scope="undo",
        rule_removed=restored,
    )
    feedback_id = insert_feedback(
        connection,
        media_id,
        "tag_correction",
        original,
        corrected,
        confidence=1.0,
        source="undo",
        now=now,
    )
    reject_tags(connection, media_id, added, feedback_id=feedback_id, now=now)
    return feedback_id


def _undo_move(engine: Engine, settings: FeedbackSettings, row: Any, now: datetime) -> UndoReport:
    application = Application.from_row(row)
    label = f"rule {row.rule_id}"
    with engine.connect() as connection:
        current = connection.scalar(select(media.c.path).where(media.c.id == row.media_id))
        if current != application.after["path"]:
            raise Conflict(
                f"media {row.media_id} has changed since {label} was applied: its file is now at "
                f"{current}; nothing was undone"
            )
        plan = plan_move(connection, row.media_id, application.before["path"])
    with moving(plan), engine.begin() as connection:
        locked = _application_row(connection, row.id, for_update=True)
        store_move(connection, plan)
        feedback_id = insert_feedback(
            connection,
            row.media_id,
            "file_move",
            str(plan.source),
            str(plan.target),
            confidence=1.0,
            source="undo",
            now=now,
        )
        judged = _settle(
            connection,
            settings,
            [(locked, "reverted")],
            feedback_id=feedback_id,
            now=now,
            undone=True,
        )
        updated = Application.from_row(_application_row_any(connection, row.id))
    return UndoReport(updated, feedback_id, judged[0].disabled_reason)


def _application_row_any(connection: Connection, application_id: int) -> Any:
    return connection.execute(
        select(rule_applications).where(rule_applications.c.id == application_id)
    ).one()


# --- listing ---------------------------------------------------------------------------------


def list_applications(
    engine: Engine,
    *,
    rule_id: int | None = None,
    media_id: int | None = None,
    outcome: str | None = None,
    limit: int = 50,
) -> list[Application]:
    """Recorded applications, newest first; raises ``NotFound`` for an unknown rule."""
    conditions = []
    if rule_id is not None:
        conditions.append(rule_applications.c.rule_id == rule_id)
    if media_id is not None:
        check_id(media_id)
        conditions.append(rule_applications.c.media_id == media_id)
    if outcome is not None:
        conditions.append(rule_applications.c.outcome == outcome)
    with database_errors(engine), engine.connect() as connection:
        if rule_id is not None:
            get_rule(connection, rule_id)
        rows = connection.execute(
            select(rule_applications, media.c.title)
            .join(media, media.c.id == rule_applications.c.media_id)
            .where(*conditions)
            .order_by(rule_applications.c.id.desc())
            .limit(limit)
        ).all()
    return [Application.from_row(row, title=row.title) for row in rows]


@dataclass(frozen=True)
class RuleDetail:
    rule: Rule
    applications: list[Application]

    def to_dict(self) -> dict[str, Any]:
        return {**self.rule.to_dict(), "applications": [a.to_dict() for a in self.applications]}


def rule_detail(engine: Engine, rule_id: int, *, limit: int = 20) -> RuleDetail:
    """One rule and its latest applications; raises ``NotFound``."""
    with database_errors(engine), engine.connect() as connection:
        rule = get_rule(connection, rule_id)
    return RuleDetail(rule, list_applications(engine, rule_id=rule_id, limit=limit))
