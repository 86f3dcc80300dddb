"""The processing chain every new or changed media item goes through.

ingest -> transcribe -> tag -> embed. Each stage is its own task; when a stage
submitted as part of the chain finishes, it submits the next registered stage
for the same items. Stages that are not installed are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from atlas.tasks.dispatcher import TaskContext
from atlas.tasks.registry import is_registered

__all__ = ["STAGES", "schedule_next"]

STAGES = ("ingest", "transcribe", "tag", "embed")


def schedule_next(ctx: TaskContext, stage: str, media_ids: Sequence[int]) -> str | None:
    """Submit the stage after ``stage`` for ``media_ids``; returns its name, if any.

    Does nothing when ``auto_process`` is off or there is nothing to process.
    """
    if not ctx.settings.auto_process or not media_ids:
        return None
    for following in STAGES[STAGES.index(stage) + 1 :]:
        if is_registered(following):
            ctx.submit(following, {"media_ids": list(media_ids), "chain": True})
            return following
    return None
