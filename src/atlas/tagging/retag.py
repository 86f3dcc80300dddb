"""The ``media-tags retag`` service: pick items, submit ``tag`` tasks in batches, report.

Items are named by TARGET (media id or path), or ``--all``, or ``--untagged``
(items without any tag). An item whose input is unchanged since it was last
tagged is reported ``unchanged`` and costs no task; ``force`` tags it again
(see :mod:`atlas.tagging.batch` for what the input is). Everything is checked
before any task runs; a failing item ends its batch's task in ``error`` with
the reason, and the other items and batches go on.

Before tagging, the tagger's tuning on the library is learned again when the
confirmed items changed enough since (:mod:`atlas.tagging.selftune_store`).

With ``auto_process`` (the submitter's setting), tasks are submitted with
``chain`` on, so the items are embedded again afterwards (their tags are part of
their embedding document), whatever the settings of the worker that runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select

from atlas.db import database_errors
from atlas.db.tables import media, media_tags
from atlas.embeddings import get_provider
from atlas.errors import InvalidInput, invalid
from atlas.media.tags import Tag, tags_by_media
from atlas.tagging.batch import nothing_to_tag
from atlas.tagging.edits import resolve_target
from atlas.tagging.inputs import chunked, load_texts, tagged_hashes
from atlas.tagging.selftune_store import tuning_of_library
from atlas.tagging.tagger import hash_inputs
from atlas.tasks import Dispatcher, TaskOutcome

__all__ = ["MAX_BATCH", "RetagItem", "RetagReport", "retag_media"]

MAX_BATCH = 1024


@dataclass
class RetagItem:
    """One item of a run."""

    media_id: int
    status: str  # tagged | unchanged | skipped | queued | error
    title: str | None = None
    task_id: int | None = None
    error: str | None = None
    #: Every tag of the item after the run, strongest source first.
    tags: list[Tag] = field(default_factory=list)
    #: Automatic tags of an earlier tagging that this run replaced.
    removed: list[str] = field(default_factory=list)
    rule_applications: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.media_id,
            "title": self.title,
            "status": self.status,
            "task_id": self.task_id,
            "error": self.error,
            "tags": [tag.__dict__ for tag in self.tags],
            "removed": self.removed,
            "rule_applications": self.rule_applications,
            "notes": self.notes,
        }


@dataclass
class RetagReport:
    items: list[RetagItem] = field(default_factory=list)
    task_ids: list[int] = field(default_factory=list)
    #: The error reason of each failed task.
    failed_tasks: list[str] = field(default_factory=list)
    #: What the tagger tuned on the library before this run, when it learned again.
    tuning: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    def summary(self) -> dict[str, int]:
        statuses = ("tagged", "unchanged", "skipped", "queued", "error")
        return {status: self.count(status) for status in statuses if self.count(status)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "task_ids": self.task_ids,
            "errors": self.failed_tasks,
            "tuning": self.tuning,
            "items": [item.to_dict() for item in self.items],
        }


def retag_media(
    dispatcher: Dispatcher,
    *,
    targets: Sequence[str] = (),
    all_media: bool = False,
    untagged: bool = False,
    force: bool = False,
    batch_size: int | None = None,
    wait: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> RetagReport:
    """Run the automatic tagger on the selected items, ``batch_size`` items per ``tag`` task.

    Raises ``InvalidInput`` / ``NotFound`` for bad arguments or targets, before
    any task runs (a named item without words is refused too), and
    ``Unavailable`` when the model cannot be loaded.
    """
    if sum((bool(targets), all_media, untagged)) != 1:
        raise InvalidInput("say what to tag: `targets`, `all` or `untagged` (one of them)")
    settings, engine = dispatcher.settings, dispatcher.engine
    size = settings.tagging.batch_size if batch_size is None else batch_size
    if not 1 <= size <= MAX_BATCH:
        raise invalid("batch", f"must be between 1 and {MAX_BATCH}")

    ids = _select(dispatcher, targets, all_media=all_media, untagged=untagged)
    # Learn the weights, threshold and genre floor again when the confirmed items
    # changed enough since (the task does nothing when the stored tuning is current).
    report = RetagReport()
    if ids:
        # With a task queue, the workers' tag tasks hash with whatever tuning is stored.
        tuned = tuning_of_library(dispatcher, wait=not dispatcher.queued)
        if tuned is not None and tuned.finished:
            report.tuning = (
                str((tuned.result or {}).get("reason"))
                if tuned.ok
                else f"tuning on the library failed, the previous values stay: {tuned.error}"
            )
    texts: dict[int, _Planned] = {}
    hashes: dict[int, str] = {}
    previous: dict[int, str] = {}
    for part in chunked(ids):  # a whole library's transcripts need not fit in memory
        with database_errors(engine), engine.connect() as connection:
            loaded = load_texts(connection, part, keep_sources=False)
            previous.update(tagged_hashes(connection, part))
        hashes.update(hash_inputs(settings, engine, list(loaded.values())))
        texts.update({m: _Planned(item.title, item.has_words) for m, item in loaded.items()})
    ids = [media_id for media_id in ids if media_id in texts]  # deleted meanwhile
    if targets:
        empty = [media_id for media_id in ids if not texts[media_id].has_words]
        if empty:
            raise nothing_to_tag(empty[0])

    items: dict[int, RetagItem] = {}
    todo: list[int] = []
    for media_id in ids:
        item = texts[media_id]
        if not item.has_words:
            items[media_id] = RetagItem(media_id, "skipped", item.title, notes=["no words to tag"])
        elif not force and previous.get(media_id) == hashes[media_id]:
            items[media_id] = RetagItem(media_id, "unchanged", item.title)
        else:
            todo.append(media_id)
    if todo and not dispatcher.queued:
        get_provider(settings).check()  # one clear line now rather than one per batch
    if on_start is not None:
        on_start(len(todo))

    batches = [todo[start : start + size] for start in range(0, len(todo), size)]
    submitted: dict[int, list[int]] = {}

    def finished(outcome: TaskOutcome) -> None:
        batch = submitted[outcome.task_id]
        _settle(report, items, texts, hashes, batch, outcome, dispatcher)
        if on_progress is not None:
            on_progress(len(batch))

    pending: list[int] = []
    for batch in batches:
        outcome = dispatcher.submit(
            "tag",
            {"media_ids": batch, "chain": dispatcher.settings.auto_process, "force": force},
        )
        report.task_ids.append(outcome.task_id)
        submitted[outcome.task_id] = batch
        if outcome.finished:
            finished(outcome)
        else:
            pending.append(outcome.task_id)
    if pending and wait:
        dispatcher.wait(pending, on_finished=finished)
    elif pending:
        for task_id in pending:
            for media_id in submitted[task_id]:
                items[media_id] = RetagItem(
                    media_id, "queued", texts[media_id].title, task_id=task_id
                )

    with database_errors(engine), engine.connect() as connection:
        current: dict[int, list[Tag]] = {}
        for part in chunked(ids):
            current.update(tags_by_media(connection, list(part)))
    for media_id in ids:
        done = items[media_id]
        done.tags = current.get(media_id, [])
        report.items.append(done)
    return report


@dataclass(frozen=True)
class _Planned:
    title: str | None
    has_words: bool


def _select(
    dispatcher: Dispatcher, targets: Sequence[str], *, all_media: bool, untagged: bool
) -> list[int]:
    engine = dispatcher.engine
    if targets:
        return list(dict.fromkeys(resolve_target(engine, target) for target in targets))
    query = select(media.c.id).order_by(media.c.id)
    if untagged:
        query = query.where(~exists().where(media_tags.c.media_id == media.c.id))
    with database_errors(engine), engine.connect() as connection:
        return list(connection.execute(query).scalars())


def _settle(
    report: RetagReport,
    items: dict[int, RetagItem],
    texts: dict[int, _Planned],
    hashes: dict[int, str],
    batch: list[int],
    outcome: TaskOutcome,
    dispatcher: Dispatcher,
) -> None:
    """Record the items of one finished batch."""
    if outcome.ok and isinstance(outcome.result, dict):
        for result in outcome.result.get("items", []):
            items[result["media_id"]] = RetagItem(
                media_id=result["media_id"],
                status=result["status"],
                title=result.get("title"),
                task_id=outcome.task_id,
                removed=result.get("removed") or [],
                rule_applications=result.get("rule_applications") or 0,
                notes=(result.get("notes") or [])
                + ([result["reason"]] if result["reason"] else []),
            )
        for media_id in batch:
            items.setdefault(
                media_id, RetagItem(media_id, "tagged", texts[media_id].title, outcome.task_id)
            )
        return
    reason = outcome.error or f"tagging task {outcome.task_id} {outcome.status}"
    report.failed_tasks.append(reason)
    # The items of a failed batch that were stored anyway carry the expected input hash.
    with database_errors(dispatcher.engine), dispatcher.engine.connect() as connection:
        done = tagged_hashes(connection, batch)
    for media_id in batch:
        stored = done.get(media_id) == hashes[media_id]
        items[media_id] = RetagItem(
            media_id,
            "tagged" if stored else "error",
            texts[media_id].title,
            task_id=outcome.task_id,
            error=None if stored else reason,
        )
