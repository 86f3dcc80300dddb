"""Task types for tests that run real processes (imported by them and by the test).

A process started with ``python -c "import task_plugins; task_plugins.main()" ARGS``
is ``atlas ARGS`` with these task types registered as well.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from atlas.tasks import TaskContext, task_type


@task_type("test-hold", retries=0)
def hold(ctx: TaskContext, marks: str, hold_file: str) -> dict[str, int]:
    """Note this run in ``marks``, then wait while ``hold_file`` exists."""
    with open(marks, "a", encoding="utf-8") as handle:
        handle.write(f"start {os.getpid()} {ctx.task_id}\n")
    while Path(hold_file).exists():
        ctx.raise_if_cancelled(min_interval_s=0.1)
        time.sleep(0.05)
    with open(marks, "a", encoding="utf-8") as handle:
        handle.write(f"end {os.getpid()} {ctx.task_id}\n")
    return {"pid": os.getpid()}


def main() -> None:
    from atlas.cli.app import main as atlas_main

    sys.argv[0] = "atlas"
    atlas_main()


def submit_and_hold() -> None:
    """``python -c ... submit`` : submit one test-hold task in-process (settings from env)."""
    from atlas.app import open_atlas
    from atlas.config import load_settings

    marks, hold_file = sys.argv[1], sys.argv[2]
    atlas = open_atlas(load_settings().settings)
    atlas.dispatcher.submit("test-hold", {"marks": marks, "hold_file": hold_file})
