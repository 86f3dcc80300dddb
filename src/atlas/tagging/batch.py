"""The ``tag`` task: tag a batch of media items, each stored on its own.

When tagging an item again does nothing: its input hash (its own text, the
embedding model, the vocabulary and the tagger's settings; see
:func:`atlas.tagging.tagger.tagging_fingerprint`) is the one it was last
tagged from. What the rest of the library learned since (new neighbours, new
confirmed tags, new rules) does not make an item stale: ``force`` re-tags it
with all of that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine

from atlas.config import Settings
from atlas.db import database_errors, fits_id
from atlas.embeddings import get_provider
from atlas.errors import AtlasError, InvalidInput, NotFound, Unavailable
from atlas.feedback import tag_rule_index
from atlas.media.tags import Tag
from atlas.tagging.inputs import load_inputs, tagged_hashes
from atlas.tagging.store import store_prediction
from atlas.tagging.tagger import hash_inputs, predict_tags
from atlas.tasks import TaskContext, task_type
from atlas.tasks.pipeline import schedule_next

__all__ = ["TagItemResult", "nothing_to_tag", "tag_batch", "tag_task"]


def nothing_to_tag(media_id: int) -> InvalidInput:
    return InvalidInput(
        f"media {media_id} has nothing to tag (no title, description or transcript)"
    )


@dataclass
class TagItemResult:
    """What tagging one item did."""

    media_id: int
    status: str  # tagged | unchanged | skipped
    title: str | None = None
    #: What the tagger stored: predictions (``auto``) and rule-made tags (``rule``).
    tags: list[Tag] = field(default_factory=list)
    #: Automatic tags of an earlier tagging that were replaced.
    removed: list[str] = field(default_factory=list)
    rule_applications: int = 0
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tag_batch(
    settings: Settings,
    engine: Engine,
    media_ids: Sequence[int],
    *,
    force: bool = False,
    chained: bool = False,
    checkpoint: Callable[[], None] | None = None,
) -> tuple[list[TagItemResult], list[tuple[int, AtlasError]]]:
    """Tag the items; returns the results and the failures (media id, error).

    A failing item does not stop the others. ``chained``: an item without words
    is skipped quietly instead of failing. Raises (for the whole batch) when the
    model, the vector store, Ollama or the vocabulary cannot be used.
    """
    given = list(dict.fromkeys(int(media_id) for media_id in media_ids))
    wanted = [media_id for media_id in given if fits_id(media_id)]
    with database_errors(engine), engine.connect() as connection:
        inputs = load_inputs(connection, wanted)
        previous = tagged_hashes(connection, list(inputs))
    results: list[TagItemResult] = []
    failures: list[tuple[int, AtlasError]] = []
    todo = []
    hashes = hash_inputs(settings, engine, list(inputs.values()))
    for media_id in given:
        item = inputs.get(media_id)
        if item is None:
            failures.append((media_id, NotFound(f"no media with id {media_id}")))
        elif not item.has_words:
            if chained:
                results.append(
                    TagItemResult(media_id, "skipped", item.title, reason="no words to tag")
                )
            else:
                failures.append((media_id, nothing_to_tag(media_id)))
        elif not force and previous.get(media_id) == hashes[media_id]:
            results.append(
                TagItemResult(
                    media_id, "unchanged", item.title, reason="tagged from the same input before"
                )
            )
        else:
            todo.append(item)
    if not todo:
        return results, failures

    predictions = predict_tags(settings, engine, todo)
    with database_errors(engine), engine.connect() as connection:
        rules = tag_rule_index(connection)
    model_id = get_provider(settings).model_id
    for item in todo:
        if checkpoint is not None:
            checkpoint()
        prediction = predictions[item.media_id]
        try:
            stored = store_prediction(engine, prediction, rules=rules, model_id=model_id)
        except AtlasError as exc:
            failures.append((item.media_id, exc))
            continue
        results.append(
            TagItemResult(
                media_id=item.media_id,
                status="tagged",
                title=item.title,
                tags=stored.tags,
                removed=stored.removed,
                rule_applications=stored.applications,
                notes=prediction.notes,
            )
        )
    return results, failures


@task_type("tag", retries=1, retry_delay_s=1.0)
def tag_task(
    ctx: TaskContext, media_ids: list[int], chain: bool = False, force: bool = False
) -> dict[str, Any]:
    """Tag media items (zero-shot, keyphrases, neighbours, profiles, rules) and store the tags.

    A failing item does not stop the others; the task then ends in ``error``
    with their reasons. In a chain, embedding is scheduled for every item still
    in the library (tags are part of the embedding document).
    """
    results, failures = tag_batch(
        ctx.settings,
        ctx.engine,
        media_ids,
        force=force,
        chained=chain,
        checkpoint=ctx.raise_if_cancelled,
    )
    transient = any(error.transient for _, error in failures)
    if chain and not transient:
        gone = {media_id for media_id, error in failures if isinstance(error, NotFound)}
        schedule_next(ctx, "tag", [m for m in dict.fromkeys(media_ids) if m not in gone])
    if len(failures) == 1 and len(media_ids) == 1:
        raise failures[0][1]
    if failures:
        shown = "; ".join(error.message for _, error in failures[:3])
        more = "; ..." if len(failures) > 3 else ""
        message = f"{len(failures)} of {len(media_ids)} items failed: {shown}{more}"
        raise Unavailable(message) if transient else InvalidInput(message)
    return {"items": [result.to_dict() for result in results]}
