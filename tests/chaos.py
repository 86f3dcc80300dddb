"""Fault injection: kill Atlas processes with SIGKILL at random moments, recover, check.

Shared by ``tests/test_fault_injection.py`` (a few kills per mode) and
``benchmarks/fault_injection.py`` (many more, with timings). Everything is real:
the commands and workers are ``atlas`` processes, the media are speech made by
espeak-ng, the models are the shipped ones.

After the kills, :func:`check_library` says what a user would call lost or
doubled: a file without exactly one media row, one transcript, a tagging and
one vector; a task left unfinished; a run left ``running``; a killed run that
was not retried.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from atlas.db.tables import media, media_embeddings, media_tag_inputs, task_logs, tasks, transcripts

_ADJECTIVES = (
    "quiet", "bright", "ancient", "restless", "golden", "frozen", "hidden", "gentle",
    "broken", "distant", "silver", "crowded", "patient", "hungry", "curious", "lonely",
)  # fmt: skip
_NOUNS = (
    "harbour", "violin", "glacier", "market", "lighthouse", "orchard", "engine", "library",
    "desert", "river", "garden", "castle", "forest", "station", "island", "workshop",
)  # fmt: skip
_VERBS = ("wakes", "sings", "waits", "burns", "drifts", "listens", "grows", "shines")


def sentence(index: int) -> str:
    """A distinct short sentence for item ``index``."""
    adjective = _ADJECTIVES[index % len(_ADJECTIVES)]
    noun = _NOUNS[(index // len(_ADJECTIVES)) % len(_NOUNS)]
    verb = _VERBS[(index // 3) % len(_VERBS)]
    return f"Item {index}. The {adjective} {noun} {verb} at dawn."


def make_speech_library(folder: Path, count: int) -> list[Path]:
    """``count`` distinct short speech recordings (WAV, espeak-ng), made once per folder."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        path = folder / f"item-{index:04d}.wav"
        if not path.exists():
            partial = folder / f".partial-{index}.wav"
            subprocess.run(
                ["espeak-ng", "-s", "170", "-w", str(partial), sentence(index)],
                check=True,
                capture_output=True,
            )
            partial.replace(path)
        files.append(path)
    return files


@dataclass
class Kill:
    """One SIGKILL: when, whom, and whether the process was still there to kill."""

    at: datetime
    pid: int
    role: str
    landed: bool


@dataclass
class Chaos:
    """Runs ``atlas`` processes and kills them; every process it starts is stopped at the end."""

    env: Mapping[str, str]
    rng: random.Random
    kills: list[Kill] = field(default_factory=list)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "atlas", *args],
            env={**self.env, **extra_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: worker processes it forks are stopped with it.
            start_new_session=True,
        )
        self._processes.append(process)
        return process

    def run(self, *args: str, timeout_s: float = 900) -> tuple[int, str]:
        process = self.start(*args)
        output = process.communicate(timeout=timeout_s)[0].decode()
        return process.returncode, output

    def kill(self, pid: int, role: str) -> bool:
        at = datetime.now(UTC)
        try:
            os.kill(pid, signal.SIGKILL)
            landed = True
        except ProcessLookupError:
            landed = False
        self.kills.append(Kill(at, pid, role, landed))
        return landed

    def kill_command_after(self, args: list[str], delay_s: float) -> bool:
        """Start ``atlas ARGS``, kill it after ``delay_s``; False if it had already ended."""
        process = self.start(*args)
        try:
            process.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            self.kill(process.pid, args[0])
            process.wait()
            process.communicate()
            return True
        process.communicate()
        return False

    def close(self) -> None:
        for process in self._processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def run_inline_with_kills(
    chaos: Chaos, library: Path, *, kills: int, window_s: tuple[float, float]
) -> tuple[int, str]:
    """``media-ingest LIBRARY -r`` in-process, killed up to ``kills`` times, then run to the end.

    A run that ends before its kill has finished the chain, so nothing is left to
    cut short and the kills stop there (on a fast machine, before ``kills``).
    Returns the exit code and output of the final, uninterrupted run.
    """
    for _ in range(kills):
        if not chaos.kill_command_after(
            ["media-ingest", str(library), "-r"], chaos.rng.uniform(*window_s)
        ):
            break
    return chaos.run("media-ingest", str(library), "-r")


def workers_with_kills(
    chaos: Chaos,
    engine: Engine,
    library: Path,
    *,
    workers: int,
    kills: int,
    interval_s: tuple[float, float],
    timeout_s: float = 900,
) -> list[subprocess.Popen[bytes]]:
    """Queue ``media-ingest LIBRARY -r`` for ``workers`` worker processes; kill some at random.

    A victim is a worker's task process (Huey restarts it) or a whole worker
    (started again). Returns when no task is unfinished; the workers still run.
    """
    pool = [chaos.start("worker", "--workers", "1") for _ in range(workers)]
    code, output = chaos.run("media-ingest", str(library), "-r", "--no-wait")
    if code != 0:
        raise AssertionError(f"media-ingest --no-wait failed: {output}")
    landed = 0
    deadline = time.monotonic() + timeout_s
    while landed < kills and time.monotonic() < deadline:
        time.sleep(chaos.rng.uniform(*interval_s))
        if not unfinished(engine):
            break
        index = chaos.rng.randrange(len(pool))
        parent = pool[index]
        busy = children(parent.pid)
        if busy and chaos.rng.random() < 0.7:
            landed += chaos.kill(chaos.rng.choice(busy), "worker process")
        else:
            landed += chaos.kill(parent.pid, "worker")
            for child in busy:  # the whole worker dies, its processes with it
                chaos.kill(child, "worker process (with its worker)")
            parent.wait()
            pool[index] = chaos.start("worker", "--workers", "1")
    wait_until_done(engine, timeout_s=max(60.0, deadline - time.monotonic()))
    return pool


def unfinished(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(select(func.count()).where(tasks.c.status.in_(("queued", "running"))))
            or 0
        )


def wait_until_done(engine: Engine, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while unfinished(engine):
        if time.monotonic() > deadline:
            raise AssertionError(f"{unfinished(engine)} task(s) still unfinished")
        time.sleep(0.5)


@dataclass
class LibraryCheck:
    """What a user would call lost or doubled, after the kills."""

    files: int
    media_rows: int
    missing_media: list[str]
    without_transcript: list[int]
    untagged: list[int]
    vectors: int
    vector_ids_missing: list[int]
    vector_ids_extra: list[int]
    embedding_rows: int
    unfinished_tasks: int
    running_logs: int
    failed_tasks: list[tuple[int, str, str | None]]
    lost_runs: int
    dead_run_rows: int
    retried_after_death: int

    @property
    def problems(self) -> list[str]:
        found = []
        if self.missing_media:
            found.append(f"{len(self.missing_media)} file(s) without a media row")
        if self.media_rows != self.files:
            found.append(f"{self.media_rows} media rows for {self.files} files")
        if self.without_transcript:
            found.append(f"media without a transcript: {self.without_transcript[:10]}")
        if self.untagged:
            found.append(f"media never tagged: {self.untagged[:10]}")
        if self.vector_ids_missing or self.vector_ids_extra:
            found.append(
                f"vectors missing for {self.vector_ids_missing[:10]}, "
                f"extra for {self.vector_ids_extra[:10]}"
            )
        if self.vectors != self.files or self.embedding_rows != self.files:
            found.append(f"{self.vectors} vectors and {self.embedding_rows} embedding rows")
        if self.unfinished_tasks:
            found.append(f"{self.unfinished_tasks} unfinished task(s)")
        if self.running_logs:
            found.append(f"{self.running_logs} task_logs row(s) left running")
        if self.failed_tasks:
            found.append(f"failed tasks: {self.failed_tasks[:5]}")
        if self.dead_run_rows != self.lost_runs:
            found.append(f"{self.lost_runs} lost runs but {self.dead_run_rows} dead-run log rows")
        return found


def check_library(engine: Engine, files: list[Path], vectors: list[int]) -> LibraryCheck:
    """Compare the library's rows (and the vector store's ids) with the files."""
    names = {str(path.resolve()) for path in files}
    with engine.connect() as connection:
        rows = connection.execute(select(media.c.id, media.c.path)).all()
        by_path = {row.path: row.id for row in rows}
        ids = {row.id for row in rows}
        transcribed = set(connection.execute(select(transcripts.c.media_id)).scalars())
        tagged = set(
            connection.execute(
                select(media_tag_inputs.c.media_id).where(
                    media_tag_inputs.c.input_hash.is_not(None)
                )
            ).scalars()
        )
        embedding_rows = int(
            connection.scalar(select(func.count()).select_from(media_embeddings)) or 0
        )
        unfinished_tasks = int(
            connection.scalar(select(func.count()).where(tasks.c.status.in_(("queued", "running"))))
            or 0
        )
        running_logs = int(
            connection.scalar(select(func.count()).where(task_logs.c.status == "running")) or 0
        )
        failed = [
            (row.id, row.task_type, row.error_reason)
            for row in connection.execute(
                select(tasks.c.id, tasks.c.task_type, tasks.c.error_reason).where(
                    tasks.c.status.in_(("error", "cancelled"))
                )
            )
        ]
        lost_runs = int(connection.scalar(select(func.sum(tasks.c.lost_runs))) or 0)
        dead_rows = int(
            connection.scalar(
                select(func.count()).where(task_logs.c.error_reason.like("%(lease expired)%"))
            )
            or 0
        )
        retried = int(
            connection.scalar(
                select(func.count()).where(tasks.c.lost_runs > 0, tasks.c.status == "completed")
            )
            or 0
        )
    return LibraryCheck(
        files=len(files),
        media_rows=len(rows),
        missing_media=sorted(names - set(by_path)),
        without_transcript=sorted(ids - transcribed),
        untagged=sorted(ids - tagged),
        vectors=len(vectors),
        vector_ids_missing=sorted(ids - set(vectors)),
        vector_ids_extra=sorted(set(vectors) - ids),
        embedding_rows=embedding_rows,
        unfinished_tasks=unfinished_tasks,
        running_logs=running_logs,
        failed_tasks=failed,
        lost_runs=lost_runs,
        dead_run_rows=dead_rows,
        retried_after_death=retried,
    )


def vector_ids(settings: Any) -> list[int]:
    """Every media id with a vector of the configured model (a list: a doubled id shows twice)."""
    from atlas.embeddings.providers import get_provider
    from atlas.embeddings.store import VectorStore

    store = VectorStore(settings)
    found: list[int] = []
    for collection in store.collections_of(get_provider(settings).model_id):
        found.extend(collection.ids())
    return found


def rerun_delays(engine: Engine, kills: list[Kill]) -> Iterator[float]:
    """Seconds from each kill that cut a run short to that task's next run starting."""
    with engine.connect() as connection:
        dead = connection.execute(
            select(task_logs.c.task_id, task_logs.c.id, task_logs.c.error_reason).where(
                task_logs.c.error_reason.like("%(lease expired)%")
            )
        ).all()
        for row in dead:
            killed = [k for k in kills if f":{k.pid} stopped" in (row.error_reason or "")]
            if not killed:
                continue
            started = connection.scalar(
                select(func.min(task_logs.c.created_at)).where(
                    task_logs.c.task_id == row.task_id, task_logs.c.id > row.id
                )
            )
            if started is not None:
                yield max(0.0, (started - killed[-1].at).total_seconds())


def start_chroma_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    """A real Chroma server (``chroma run``) on ``port``; raises if it does not come up."""
    import shutil

    import httpx

    executable = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [executable, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("the Chroma server did not start")
