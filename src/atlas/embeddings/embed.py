"""Embedding media items: the ``embed`` task and the ``embed_media`` service.

Crash safety, in the order every batch writes:

1. the model turns the batch's documents into vectors (nothing written yet);
2. the vector store upserts them under the media ids (writing twice replaces);
3. ``media_embeddings`` records them, in one transaction.

A ``kill -9`` before 3 leaves vectors the database does not know about: the
items still look unembedded, so the same command embeds them again and the
upsert replaces the vectors; nothing is duplicated. A record always means the
store accepted the vector.

Deciding what to do costs a few bulk SQL reads (document hashes against the
recorded ones): with nothing changed, ``--all`` neither loads the model nor
opens the vector store. When it has work to do anyway, or with ``verify``, it
also compares the store with the records and repairs either side: vectors
missing from the store (a wiped folder, a new server) are embedded again, and
vectors of deleted media are removed. ``--all --force`` also rebuilds a damaged
embedded store: its folder is moved aside (kept, renamed) and every item is
embedded again into a new one, from the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from atlas.db import check_ids, database_errors
from atlas.embeddings.document import MediaDocument
from atlas.embeddings.providers import get_provider
from atlas.embeddings.repository import (
    EmbeddingRecord,
    RecordedEmbedding,
    forget_embeddings,
    load_documents,
    record_embeddings,
    recorded_embeddings,
)
from atlas.embeddings.store import StoreDamaged, VectorStore, get_store
from atlas.errors import InvalidInput, NotFound, invalid
from atlas.tasks import Dispatcher, TaskContext, TaskOutcome, task_type
from atlas.tasks.pipeline import schedule_next

__all__ = ["EmbedReport", "embed_batch", "embed_media"]

MAX_BATCH = 4096


@dataclass
class EmbedReport:
    """What one ``embed_media`` run did."""

    model: str
    dimension: int | None = None
    #: Items looked at (the given ids, or the whole library with ``--all``).
    selected: int = 0
    embedded: int = 0
    unchanged: int = 0
    #: Items with no words to embed (no title, tags, genre, description, transcript).
    empty: list[int] = field(default_factory=list)
    #: Vectors removed: of deleted media, or of items that no longer have words.
    removed: int = 0
    #: Recorded vectors that were missing from the store and were embedded again.
    repaired: int = 0
    batches: int = 0
    model_calls: int = 0
    task_ids: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: Where a damaged embedded store was moved before it was rebuilt.
    set_aside: str | None = None

    @property
    def items_per_s(self) -> float | None:
        if not self.embedded or self.elapsed_s <= 0:
            return None
        return self.embedded / self.elapsed_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "items_per_s": self.items_per_s}


def embed_media(
    dispatcher: Dispatcher,
    *,
    media_ids: Sequence[int] = (),
    all_media: bool = False,
    force: bool = False,
    verify: bool = False,
    batch_size: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> EmbedReport:
    """Embed the given media items, or with ``all_media`` every new or changed one.

    Work is split into ``embed`` tasks of ``batch_size`` items (one task_logs row
    each, one model call each). Unchanged items (same document hash and model)
    are skipped without loading the model; ``force`` embeds them again. With
    ``all_media``, ``verify`` (implied when there is work to do) also checks the
    vector store against the records and repairs it; with ``force`` too, a
    damaged embedded store is moved aside and rebuilt. Idempotent and safe to
    interrupt: running it again completes the work.

    Raises ``InvalidInput`` for bad arguments or an explicitly named item with
    nothing to embed, ``NotFound`` for an unknown media id, ``Unavailable`` when
    the model or the vector store cannot be reached (checked before any task runs).
    """
    if all_media == bool(media_ids):
        raise InvalidInput("give `media_ids` (one or more) or `all`")
    if verify and not all_media:
        raise invalid("verify", "goes with `all`")
    size = dispatcher.settings.embedding.batch_size if batch_size is None else batch_size
    if not 1 <= size <= MAX_BATCH:
        raise invalid("batch", f"must be between 1 and {MAX_BATCH}")

    started = time.perf_counter()
    settings = dispatcher.settings
    engine = dispatcher.engine
    provider = get_provider(settings)
    report = EmbedReport(model=provider.model_id)
    wanted = None if all_media else check_ids(sorted(set(media_ids)))
    with database_errors(engine), engine.connect() as connection:
        documents = load_documents(connection, wanted)
        recorded = recorded_embeddings(connection, provider.model_id, wanted)
    if wanted is not None:
        unknown = [media_id for media_id in wanted if media_id not in documents]
        if unknown:
            raise NotFound(f"no media with id {unknown[0]}")
        empty = [media_id for media_id in wanted if not documents[media_id].embeddable]
        if empty:
            raise InvalidInput(
                f"media {empty[0]} has nothing to embed "
                "(no title, tags, genre, description or transcript)"
            )
    report.selected = len(documents)
    report.empty = sorted(m for m, doc in documents.items() if not doc.embeddable)
    if recorded:
        report.dimension = next(iter(recorded.values())).dimension
    if all_media and force:
        report.set_aside = _set_aside_if_damaged(get_store(settings))

    todo = {
        media_id
        for media_id, doc in documents.items()
        if doc.embeddable
        and (force or media_id not in recorded or recorded[media_id].doc_hash != doc.hash)
    }
    # Items that lost their words still have a vector: the task removes it.
    todo |= {m for m in recorded if m in documents and not documents[m].embeddable}
    if all_media and recorded and (todo or verify):
        todo |= _reconcile(dispatcher, provider.model_id, recorded, documents, report)
    report.unchanged = sum(1 for m, doc in documents.items() if doc.embeddable and m not in todo)

    if todo and not dispatcher.queued:
        # Fail in one line now rather than once per batch, retries included.
        provider.check()
        get_store(settings).check()
    if on_start is not None:
        on_start(len(todo))
    if not todo:
        report.elapsed_s = time.perf_counter() - started
        return report

    # Longest documents first, so each model call pads texts of similar length.
    ordered = sorted(todo, key=lambda m: (-len(documents[m].text) if m in documents else 0, m))
    batches = [ordered[start : start + size] for start in range(0, len(ordered), size)]
    outcomes: list[TaskOutcome] = []
    for batch in batches:
        outcome = dispatcher.submit("embed", {"media_ids": batch, "chain": False, "force": force})
        outcomes.append(outcome)
        report.task_ids.append(outcome.task_id)
        if outcome.finished:
            _count(report, outcome)
            if on_progress is not None:
                on_progress(len(batch))
            if not outcome.ok:
                break  # the rest would fail the same way
    if dispatcher.queued:
        sizes = {
            outcome.task_id: len(batch) for outcome, batch in zip(outcomes, batches, strict=True)
        }

        def finished(outcome: TaskOutcome) -> None:
            _count(report, outcome)
            if on_progress is not None:
                on_progress(sizes[outcome.task_id])

        dispatcher.wait(report.task_ids, on_finished=finished)
    report.batches = len(report.task_ids)
    report.elapsed_s = time.perf_counter() - started
    return report


def _set_aside_if_damaged(store: VectorStore) -> str | None:
    """Move a damaged embedded store aside (the rebuild then fills a new one)."""
    if store.is_server:
        return None
    try:
        store.check_readable()
    except StoreDamaged:
        return str(store.set_aside())
    return None


def _reconcile(
    dispatcher: Dispatcher,
    model_id: str,
    recorded: dict[int, RecordedEmbedding],
    documents: dict[int, MediaDocument],
    report: EmbedReport,
) -> set[int]:
    """Ids whose store and record disagree: recorded but missing, or stored but unknown."""
    # Equal counts would not do: a missing vector and an orphan cancel out.
    stored: set[int] = set()
    for collection in get_store(dispatcher.settings).collections_of(model_id):
        stored |= collection.ids()
    missing = set(recorded) - stored
    report.repaired = len(missing & set(documents))
    # Stored but unrecorded: a crash after the store write (embedded again anyway)
    # or a deleted media item (the task removes its vector).
    return missing | (stored - set(recorded))


def _count(report: EmbedReport, outcome: TaskOutcome) -> None:
    if not outcome.ok or not isinstance(outcome.result, dict):
        report.failed.append(outcome.error or f"embedding task {outcome.task_id} {outcome.status}")
        return
    result = outcome.result
    report.embedded += len(result["embedded"])
    report.removed += len(result["removed"])
    report.model_calls += result["model_calls"]
    if result.get("dimension"):
        report.dimension = result["dimension"]


# --- the task ------------------------------------------------------------------


@task_type("embed", retries=2, retry_delay_s=1.0)
def embed_task(
    ctx: TaskContext, media_ids: list[int], chain: bool = False, force: bool = False
) -> dict[str, Any]:
    """Embed a batch of media items and store their vectors (one model call)."""
    result = embed_batch(ctx, media_ids, force=force)
    if chain:
        schedule_next(ctx, "embed", result["embedded"])
    return result


def embed_batch(
    ctx: TaskContext, media_ids: Sequence[int], *, force: bool = False
) -> dict[str, Any]:
    """Bring the vectors of ``media_ids`` up to date: embed, remove or leave alone.

    Each id is looked at afresh (the task may run long after it was planned, or
    twice): a deleted item or one with no words loses its vector; a new or
    changed one (or any, with ``force``) is embedded; the rest are left alone.
    """
    settings = ctx.settings
    engine = ctx.engine
    provider = get_provider(settings)
    with database_errors(engine), engine.connect() as connection:
        documents = load_documents(connection, media_ids)
        recorded = recorded_embeddings(connection, provider.model_id, media_ids)
    store = get_store(settings)
    result: dict[str, Any] = {
        "model": provider.model_id,
        "dimension": None,
        "embedded": [],
        "unchanged": [],
        "removed": [],
        "empty": [],
        "model_calls": 0,
    }

    gone = [m for m in media_ids if m not in documents or not documents[m].embeddable]
    result["empty"] = [m for m in gone if m in documents]
    if gone:
        _remove(store, provider.model_id, gone)
        forget_embeddings(engine, provider.model_id, gone)
        result["removed"] = [m for m in gone if m in recorded or m not in documents]

    candidates = [m for m in media_ids if m in documents and documents[m].embeddable]
    if not force:
        same = [
            m for m in candidates if m in recorded and recorded[m].doc_hash == documents[m].hash
        ]
        if same:
            present = _present(store, provider.model_id, recorded, same)
            result["unchanged"] = [m for m in same if m in present]
            candidates = [m for m in candidates if m not in present]
    if not candidates:
        return result

    ctx.raise_if_cancelled()
    vectors = provider.embed([documents[m].text for m in candidates])
    result["model_calls"] = 1
    dimension = int(vectors.shape[1])
    collection = store.collection(provider.model_id, dimension)
    assert collection is not None
    vectors = vectors.astype("<f4", copy=False)
    collection.upsert(
        candidates,
        vectors,
        [
            {
                "media_type": documents[m].media_type,
                "genres": list(documents[m].genres),
                "doc_hash": documents[m].hash,
            }
            for m in candidates
        ],
    )
    # Only now that the store holds the vectors may the database say so.
    record_embeddings(
        engine,
        [
            EmbeddingRecord(
                media_id=m,
                model=provider.model_id,
                dimension=dimension,
                collection=collection.name,
                doc_hash=documents[m].hash,
                doc_chars=len(documents[m].text),
                vector=vectors[row].tobytes(),
            )
            for row, m in enumerate(candidates)
        ],
    )
    result["embedded"] = candidates
    result["dimension"] = dimension
    return result


def _remove(store: VectorStore, model_id: str, ids: Sequence[int]) -> None:
    """Delete the vectors of ``ids`` from every collection of ``model_id``."""
    for collection in store.collections_of(model_id):
        collection.delete(ids)


def _present(
    store: VectorStore, model_id: str, recorded: dict[int, RecordedEmbedding], ids: Sequence[int]
) -> set[int]:
    """Which of ``ids`` (all recorded) have their vector in the store."""
    by_dimension: dict[int, list[int]] = {}
    for media_id in ids:
        by_dimension.setdefault(recorded[media_id].dimension, []).append(media_id)
    present: set[int] = set()
    for dimension, group in by_dimension.items():
        collection = store.collection(model_id, dimension, create=False)
        if collection is not None:
            present |= collection.present(group)
    return present
