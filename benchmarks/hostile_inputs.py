"""1,000 generated hostile inputs over every command: 0 exit-70, 0 tracebacks.

    PYTHONPATH=src python benchmarks/hostile_inputs.py                  # 1,000 runs, SQLite
    PYTHONPATH=src python benchmarks/hostile_inputs.py --runs 5000 --seed 7
    PYTHONPATH=src python benchmarks/hostile_inputs.py --postgres postgresql://...

Every command ``atlas --help`` lists (but ``demo``, ``worker`` and ``media-tags
train``: see tests/hostile_support.py) is run in turn, in-process, with hostile
values for its parameters and now and then for the global options: ids beyond
64 bits, nan and 1e309, NUL and control characters, 10,000-character strings,
paths that are too long, missing, a file where a folder belongs, a symlink loop,
a corrupt database, a binary config file. The library it runs on holds
catalogue records and a real video (ffmpeg-made) in a sandbox folder, so moves,
transcription and embedding have something to work on; the commands run in that
folder. Target: no run ends with exit 70 (``internal error``) or a traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sqlalchemy import create_engine, text

from atlas.db.engine import normalise_url
from hostile_support import EXCLUDED, Runner, make_sandbox, random_inputs


def _clip(folder: Path) -> Path | None:
    """A 2-second video with sound, made by ffmpeg (None without ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        return None
    out = folder / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=16000",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(out),
        ],
        check=True,
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--postgres", help="run on a throwaway schema of this PostgreSQL")
    options = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="atlas-hostile-"))
    schema = None
    admin = None
    try:
        sandbox = make_sandbox(root, _clip(root))
        home = root / "home"
        home.mkdir()
        database_url = f"sqlite:///{home / 'atlas.db'}"
        if options.postgres:
            schema = f"hostile_{uuid.uuid4().hex[:10]}"
            admin = create_engine(normalise_url(options.postgres))
            with admin.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            separator = "&" if "?" in options.postgres else "?"
            database_url = f"{options.postgres}{separator}options=-csearch_path%3D{schema}"
        run = Runner(
            {
                "ATLAS_HOME": str(home),
                "ATLAS_DATABASE_URL": database_url,
                "ATLAS_AUTO_PROCESS": "false",
                "COLUMNS": "200",
            }
        )
        os.chdir(sandbox)
        for setup in (
            ["media-ingest", "--catalog", str(sandbox / "catalogue.csv")],
            ["media-ingest", "--recursive", str(sandbox / "folder-with-media")],
        ):
            outcome = run(setup)
            if outcome.exit_code != 0:
                print(f"setup failed: atlas {' '.join(setup)}: {outcome.output}")
                return 2

        print(f"commands left out: {', '.join(sorted(EXCLUDED))}")
        internal = tracebacks = 0
        codes: Counter[int] = Counter()
        examples: list[str] = []
        started = time.perf_counter()
        for _, args in zip(range(options.runs), random_inputs(options.seed, sandbox), strict=False):
            outcome = run(args)
            codes[outcome.exit_code] += 1
            if outcome.internal_error:
                internal += 1
            if outcome.has_traceback:
                tracebacks += 1
            if (outcome.internal_error or outcome.has_traceback) and len(examples) < 10:
                last = (outcome.output.strip().splitlines() or [""])[-1]
                examples.append(f"  atlas {args!r}\n    -> {last[:300]}")
        elapsed = time.perf_counter() - started
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)
        if admin is not None and schema is not None:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

    print(
        f"exit codes: {', '.join(f'{code}: {n}' for code, n in sorted(codes.items()))} "
        f"({elapsed:.0f} s, {elapsed / max(1, options.runs) * 1000:.0f} ms per run)"
    )
    for example in examples:
        print(example)
    met = internal == 0 and tracebacks == 0
    print(
        f"hostile inputs: {options.runs} run, {internal} exit-70, {tracebacks} tracebacks "
        f"(target 0: {'met' if met else 'MISSED'})"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
