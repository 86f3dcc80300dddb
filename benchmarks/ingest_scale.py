"""Ingest a folder of generated media files, then ingest it again.

Prints the first run's time and rate, the number of completed task_logs rows (target:
one per file), and the second run's time as a share of the first (target: under 10%),
each with a verdict; exits 1 when a target is missed. Files are
made with ffmpeg: a handful of distinct clips, each copied with distinct trailing
bytes so every file has its own content (ffprobe ignores the trailer).

    python benchmarks/ingest_scale.py [--files 200] [--process]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from atlas.app import open_atlas
from atlas.config import load_settings
from atlas.db.tables import task_logs
from atlas.media import ingest_paths

PATTERNS = ("testsrc2", "rgbtestsrc", "smptebars", "mandelbrot", "life", "cellauto")


def make_files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for index, pattern in enumerate(PATTERNS):
        clip = folder.parent / f"clip{index}.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"{pattern}=size=320x180:rate=12",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={200 + 50 * index}",
                "-t",
                "3",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
                str(clip),
            ],
            check=True,
        )
        clips.append(clip.read_bytes())
    for index in range(count):
        data = clips[index % len(clips)] + index.to_bytes(4, "big") * 16
        (folder / f"file{index:04d}.mp4").write_bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument(
        "--process",
        action="store_true",
        help="also transcribe/tag/embed (auto_process) in the first run",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as scratch:
        root = Path(scratch)
        make_files(root / "library", args.files)
        settings = load_settings(
            home=root / "home", environ={}, overrides={"auto_process": args.process}
        ).settings
        atlas = open_atlas(settings)

        started = time.perf_counter()
        first = ingest_paths(atlas.dispatcher, [root / "library"])
        first_s = time.perf_counter() - started
        with atlas.engine.connect() as connection:
            completed = connection.scalar(
                select(func.count())
                .select_from(task_logs)
                .where(task_logs.c.task_type == "ingest", task_logs.c.status == "completed")
            )

        started = time.perf_counter()
        second = ingest_paths(atlas.dispatcher, [root / "library"])
        second_s = time.perf_counter() - started
        atlas.close()

    print(
        f"ingest {args.files} files, first run: {first_s:.2f} s "
        f"({args.files / first_s:.1f} files/s), {first.summary()} (no target)"
    )
    one_each = completed == args.files
    print(
        f"completed ingest task_logs rows: {completed} "
        f"(target: one per file, {args.files}: {'met' if one_each else 'MISSED'})"
    )
    share = second_s / first_s
    print(
        f"re-ingest of unchanged files: {second_s:.3f} s = {100 * share:.1f}% "
        f"of the first run, {second.summary()} (target < 10%: "
        f"{'met' if share < 0.1 else 'MISSED'})"
    )
    return 0 if one_each and share < 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
