"""What the tagger learned about the library: stored, refreshed, and used.

:func:`atlas.tagging.selftune.learn_tuning` chooses weights, threshold and genre
floor on the library's confirmed items; this module keeps the outcome in
``tagger_tuning`` (the newest row per embedding model; older ones are deleted),
relearns it when the confirmed items have grown or shrunk by ``REFRESH_SHARE``
(at least ``REFRESH_MIN`` items) since, and gives the tagger the settings to
use (:func:`tuned_settings`): the learned values when the tuning says
``learned`` and ``tagging.self_tune`` is on, the configured ones otherwise.
The learned values are part of every item's input hash, so ``media-tags retag``
re-tags items once a new tuning changes them.

Learning runs as the ``tune-tagger`` task: ``media-tags tuning --refresh``, and
``media-tags retag`` before it tags, when the stored tuning is out of date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from atlas.config import Settings
from atlas.db import database_errors
from atlas.db.tables import tagger_tuning
from atlas.embeddings import get_provider
from atlas.tagging.selftune import Learned, confirmed_genre_items, learn_tuning
from atlas.tasks import Dispatcher, TaskContext, TaskOutcome, task_type

__all__ = [
    "REFRESH_MIN",
    "REFRESH_SHARE",
    "LibraryTuning",
    "current_tuning",
    "is_stale",
    "refresh_tuning",
    "store_tuning",
    "tune_tagger_task",
    "tuned_settings",
    "tuning_of_library",
]

#: Relearn once the confirmed items changed by this share of those learned from...
REFRESH_SHARE = 0.1
#: ...and by at least this many items.
REFRESH_MIN = 10


@dataclass(frozen=True)
class LibraryTuning:
    """A stored tuning."""

    id: int
    model: str
    learned: Learned
    created_at: datetime

    @property
    def in_use(self) -> bool:
        return self.learned.status == "learned"

    def to_dict(self) -> dict[str, Any]:
        found = self.learned
        return {
            "id": self.id,
            "model": self.model,
            "status": found.status,
            "items": found.items,
            "genres": found.genres,
            "weights": found.weights,
            "threshold": found.threshold,
            "genre_floor": found.genre_floor,
            "scores": found.scores,
            "reason": found.reason,
            "created_at": self.created_at.isoformat(),
        }


def current_tuning(settings: Settings, engine: Engine) -> LibraryTuning | None:
    """The newest stored tuning for the configured embedding model (``None``: none yet)."""
    model = get_provider(settings).model_id
    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(
            select(tagger_tuning)
            .where(tagger_tuning.c.model == model)
            .order_by(tagger_tuning.c.id.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    return LibraryTuning(
        id=int(row.id),
        model=row.model,
        learned=Learned(
            status=row.status,
            items=int(row.items),
            genres=int(row.genres),
            weights=dict(row.weights),
            threshold=float(row.threshold),
            genre_floor=float(row.genre_floor),
            reason=row.reason,
            scores=dict(row.scores),
        ),
        created_at=row.created_at,
    )


def store_tuning(settings: Settings, engine: Engine, learned: Learned) -> LibraryTuning:
    """Store ``learned`` as the library's tuning (replacing the older ones)."""
    model = get_provider(settings).model_id
    with database_errors(engine), engine.begin() as connection:
        inserted = connection.execute(
            insert(tagger_tuning).values(
                model=model,
                status=learned.status,
                items=learned.items,
                genres=learned.genres,
                weights=learned.weights,
                threshold=learned.threshold,
                genre_floor=learned.genre_floor,
                scores=learned.scores,
                reason=learned.reason,
            )
        ).inserted_primary_key
        assert inserted is not None
        row_id = int(inserted[0])
        connection.execute(
            delete(tagger_tuning).where(
                tagger_tuning.c.model == model, tagger_tuning.c.id != row_id
            )
        )
    stored = current_tuning(settings, engine)
    assert stored is not None
    return stored


def is_stale(tuning: LibraryTuning | None, confirmed: int) -> bool:
    """Whether the confirmed items changed enough since ``tuning`` to learn again."""
    if tuning is None:
        return True
    before = int(tuning.learned.scores.get("confirmed_items", 0))
    return abs(confirmed - before) >= max(REFRESH_MIN, REFRESH_SHARE * before)


def tuned_settings(settings: Settings, engine: Engine) -> Settings:
    """The settings the tagger uses: the learned weights, threshold and floor when in use."""
    if not settings.tagging.self_tune:
        return settings
    tuning = current_tuning(settings, engine)
    if tuning is None or not tuning.in_use:
        return settings
    found = tuning.learned
    known = settings.tagging.weights.model_dump()
    weights = settings.tagging.weights.model_copy(
        update={name: float(value) for name, value in found.weights.items() if name in known}
    )
    tagging = settings.tagging.model_copy(
        update={
            "weights": weights,
            "threshold": found.threshold,
            "genre_floor": found.genre_floor,
        }
    )
    return settings.model_copy(update={"tagging": tagging})


def refresh_tuning(settings: Settings, engine: Engine, *, force: bool = False) -> LibraryTuning:
    """Learn and store the tuning when it is out of date (or ``force``); the current one."""
    current = current_tuning(settings, engine)
    if not force and current is not None and not is_stale(current, confirmed_genre_items(engine)):
        return current
    return store_tuning(settings, engine, learn_tuning(settings, engine))


@task_type("tune-tagger", retries=0)
def tune_tagger_task(ctx: TaskContext, force: bool = False) -> dict[str, Any]:
    """Learn the tagger's weights, threshold and genre floor from the confirmed items."""
    current = current_tuning(ctx.settings, ctx.engine)
    if (
        not force
        and current is not None
        and not is_stale(current, confirmed_genre_items(ctx.engine))
    ):
        return current.to_dict()
    learned = learn_tuning(ctx.settings, ctx.engine, checkpoint=ctx.raise_if_cancelled)
    return store_tuning(ctx.settings, ctx.engine, learned).to_dict()


def tuning_of_library(
    dispatcher: Dispatcher, *, refresh: bool = False, wait: bool = True
) -> TaskOutcome | None:
    """Bring the tuning up to date through the ``tune-tagger`` task when needed.

    ``refresh``: learn again whatever the stored one says. ``None`` when the
    stored tuning is current and nothing ran. ``wait=False`` with a task queue:
    the outcome is the queued task's.
    """
    settings, engine = dispatcher.settings, dispatcher.engine
    if not settings.tagging.self_tune and not refresh:
        return None
    if not refresh:
        current = current_tuning(settings, engine)
        if current is not None and not is_stale(current, confirmed_genre_items(engine)):
            return None
    outcome = dispatcher.submit("tune-tagger", {"force": refresh})
    if wait and not outcome.finished:
        outcome = dispatcher.wait([outcome.task_id])[0]
    return outcome
