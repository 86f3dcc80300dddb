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

    The caller decides whether the chain goes on: the first stage by the choice
    its submitter recorded in its params (``process``), later stages because
    they run as part of a chain. The settings of the process that happens to
    run the task (a worker's ``auto_process``) do not overrule that choice.
    Does nothing when there is nothing to process.
    """
    if not media_ids:
        return None
    for following in STAGES[STAGES.index(stage) + 1 :]:
        if is_registered(following):
            ctx.submit(following, {"media_ids": list(media_ids), "chain": True})
            return following
    return None
