"""Task analytics at scale: each analysis over 1M (and 10M) task_logs rows, and the
dispatcher's per-task logging overhead.

    PYTHONPATH=src python benchmarks/analytics_scale.py                 # 1M rows, SQLite
    PYTHONPATH=src python benchmarks/analytics_scale.py --rows 1M,10M   # both sizes
    PYTHONPATH=src python benchmarks/analytics_scale.py --postgres postgresql://...

Rows are generated with realistic mixtures (task types with their own duration
distributions, failure reasons with ids and paths in them, retries, queue waits,
a few runs still in progress), spread over 90 days, and bulk-loaded (executemany
on SQLite, COPY on PostgreSQL); generating and loading are not part of the
figures. PostgreSQL runs when ``--postgres URL`` or ``ATLAS_TEST_POSTGRES_URL``
is given, in a throwaway schema that is dropped afterwards.

Each figure is the median of a few runs, printed with its target and a verdict; the
script exits 1 when a target is missed. A library upgraded with old rows written
outside the dispatcher (here: the generated rows) pays once: the first ``--trends``
folds them all into the daily summaries, which is its own figure with its own target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from atlas.analytics import (
    cleanup_task_logs,
    find_bottlenecks,
    fold_task_logs,
    summarise_task_metrics,
    task_trends,
)
from atlas.app import open_atlas
from atlas.config import AnalyticsSettings, load_settings
from atlas.db import make_engine, upgrade
from atlas.db.engine import normalise_url
from atlas.tasks import Dispatcher, TaskContext, TaskOutcome, task_type

DAYS = 90
COLUMNS = (
    "id",
    "task_id",
    "task_type",
    "status",
    "duration_ms",
    "retries",
    "error_reason",
    "created_at",
    "finished_at",
    "queue_wait_ms",
    "worker",
)

# name: (share of runs, median ms, log-sd, failure rate)
TYPES: dict[str, tuple[float, float, float, float]] = {
    "ingest": (0.28, 120, 0.8, 0.03),
    "catalog-import": (0.05, 40, 0.5, 0.01),
    "transcribe": (0.10, 8000, 0.9, 0.06),
    "tag": (0.20, 300, 0.7, 0.02),
    "embed": (0.20, 80, 0.6, 0.01),
    "search": (0.10, 25, 0.5, 0.005),
    "learn": (0.05, 1500, 1.0, 0.04),
    "analytics-cleanup": (0.02, 900, 0.7, 0.01),
}

REASONS: dict[str, list[str]] = {
    "ingest": [
        "ffprobe failed on '/media/library/{a}/clip_{n}.mkv': Invalid data found when "
        "processing input",
        "/media/library/{a}/episode-{n}.mp4: cannot be read (Permission denied)",
        "FileNotFoundError: [Errno 2] No such file or directory: '/mnt/nas/{a}/{n}.avi'",
    ],
    "transcribe": [
        "Whisper failed on media {n}: CUDA out of memory. Tried to allocate {f} GiB",
        "TimeoutError: transcription of media {n} exceeded {m} s",
        "audio stream 0 of media {n} has no samples",
    ],
    "tag": [
        "Ollama at http://127.0.0.1:11434/api/generate returned 503 for media {n}",
        "tag vocabulary file /etc/atlas/vocab-{m}.txt is empty",
    ],
    "embed": [
        "Chroma server at 10.0.0.{m}:8000 is not reachable; set chroma.host or unset it",
        "embedding batch {h} failed: dimension mismatch (expected 384, got {m})",
    ],
    "learn": ["rule {n} conflicts with rule {m} on tag '{a}'"],
    "*": [
        "the database /var/lib/atlas/atlas-{m}.db is locked by another process; try again",
        "media {n} not found",
    ],
}


# --- generating rows --------------------------------------------------------------


def generate(total: int, now: datetime, seed: int = 7, chunk: int = 250_000) -> Iterator[list]:
    """Rows in id (= time) order, ``chunk`` at a time: lists of column tuples."""
    rng = np.random.default_rng(seed)
    names = list(TYPES)
    shares = np.array([TYPES[n][0] for n in names])
    shares /= shares.sum()
    start = now - timedelta(days=DAYS)
    span_s = DAYS * 86400.0
    # Busier in the day than at night: sorted offsets with a diurnal density.
    offsets = np.sort(rng.uniform(0, span_s, total))
    hour = (offsets / 3600.0 + start.hour) % 24
    keep = rng.uniform(size=total) < 0.55 + 0.45 * np.sin(np.pi * (hour - 6) / 24) ** 2
    offsets = np.sort(np.concatenate([offsets[keep], rng.uniform(0, span_s, total - keep.sum())]))
    epoch = np.datetime64(start.replace(tzinfo=None), "us")
    base_id = 0
    for first in range(0, total, chunk):
        n = min(chunk, total - first)
        created = epoch + (offsets[first : first + n] * 1e6).astype("timedelta64[us]")
        kinds = rng.choice(len(names), size=n, p=shares)
        medians = np.array([TYPES[x][1] for x in names])[kinds]
        sigmas = np.array([TYPES[x][2] for x in names])[kinds]
        fail = np.array([TYPES[x][3] for x in names])[kinds]
        age_days = (np.datetime64(now.replace(tzinfo=None), "us") - created) / np.timedelta64(
            1, "D"
        )
        transcribe = kinds == names.index("transcribe")
        # A trend to find: transcription got slower, and fails less, in the last 30 days.
        medians = np.where(transcribe & (age_days < 30), medians * 1.6, medians)
        fail = np.where(transcribe & (age_days < 30), fail / 3, fail)
        durations = np.maximum(0, rng.lognormal(np.log(medians), sigmas)).astype(np.int64)
        roll = rng.uniform(size=n)
        status = np.where(roll < fail, "error", np.where(roll > 0.997, "cancelled", "completed"))
        retries = np.where(
            status == "error",
            rng.choice([0, 1, 2], size=n, p=[0.5, 0.25, 0.25]),
            (rng.uniform(size=n) < 0.03).astype(int),
        )
        queued = rng.uniform(size=n) < 0.6
        waits = rng.lognormal(np.log(200), 1.2, size=n).astype(np.int64)
        workers = rng.integers(1, 5, size=n)
        created_text = np.datetime_as_string(created, unit="us")
        finished_text = np.datetime_as_string(
            created + durations.astype("timedelta64[ms]"), unit="us"
        )
        status = status.astype(object)
        if first + n == total:  # the newest runs are still going
            status[-12:] = "running"
        stale = rng.uniform(size=n) < 0.0001  # abandoned by a crashed worker
        status[stale] = "running"
        rows = []
        for i in range(n):
            name = names[kinds[i]]
            state = status[i]
            running = state == "running"
            rows.append(
                (
                    base_id + i + 1,
                    base_id + i + 1,
                    name,
                    state,
                    None if running else int(durations[i]),
                    0 if running else int(retries[i]),
                    _reason(rng, name) if state == "error" else None,
                    created_text[i].replace("T", " "),
                    None if running else finished_text[i].replace("T", " "),
                    int(waits[i]) if queued[i] else None,
                    f"worker-{workers[i]}:{1000 + workers[i]}",
                )
            )
        base_id += n
        yield rows


def _reason(rng: np.random.Generator, name: str) -> str:
    choices = REASONS.get(name, []) + REASONS["*"]
    template = choices[int(rng.integers(len(choices)))]
    return template.format(
        a=f"{rng.integers(1, 400):03d}",
        n=int(rng.integers(1, 2_000_000)),
        m=int(rng.integers(1, 999)),
        f=f"{rng.uniform(0.5, 8):.2f}",
        h=uuid.UUID(int=int(rng.integers(0, 2**62))).hex[:12],
    )


# --- loading -----------------------------------------------------------------------


INDEXES = {
    "ix_task_logs_created_at": "task_logs (created_at)",
    "ix_task_logs_task_type_created_at": "task_logs (task_type, created_at)",
    "ix_task_logs_task_id": "task_logs (task_id)",
}


def load_sqlite(path: Path, total: int, now: datetime) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    for name in INDEXES:  # building indexes afterwards is much faster
        connection.execute(f"DROP INDEX {name}")
    marks = ", ".join("?" for _ in COLUMNS)
    sql = f"INSERT INTO task_logs ({', '.join(COLUMNS)}) VALUES ({marks})"
    for rows in generate(total, now):
        connection.executemany(sql, rows)
    for name, target in INDEXES.items():
        connection.execute(f"CREATE INDEX {name} ON {target}")
    connection.execute("COMMIT")
    connection.close()


def load_postgres(url: str, total: int, now: datetime) -> None:
    import psycopg

    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f"DROP INDEX {name}")
        with cursor.copy(f"COPY task_logs ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for rows in generate(total, now):
                for row in rows:
                    copy.write_row((*row[:7], row[7] + "+00", row[8] and row[8] + "+00", *row[9:]))
        for name, target in INDEXES.items():
            cursor.execute(f"CREATE INDEX {name} ON {target}")
        cursor.execute("SELECT setval(pg_get_serial_sequence('task_logs', 'id'), %s)", (total,))
        connection.commit()
        connection.autocommit = True
        cursor.execute("ANALYZE task_logs")


# --- timing ------------------------------------------------------------------------


def timed(function: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median seconds over ``repeat`` runs; no warm-up, so a cold first run counts."""
    times = []
    result = None
    for _ in range(repeat):
        clock = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - clock)
    return statistics.median(times), result


#: Labels of the figures that missed their target.
MISSED: list[str] = []


def report(label: str, seconds: float, target_s: float | None = None) -> None:
    if target_s is None:
        print(f"{label}: {_fmt(seconds)} (no target)")
        return
    met = seconds < target_s
    if not met:
        MISSED.append(label)
    print(f"{label}: {_fmt(seconds)} (target < {_fmt(target_s)}: {'met' if met else 'MISSED'})")
    sys.stdout.flush()


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def run_analyses(backend: str, url: str, total: int, now: datetime) -> None:
    settings = AnalyticsSettings()
    engine = make_engine(url)
    size = f"{total:,} rows, {backend}"
    try:
        summary_s, summary = timed(
            lambda: summarise_task_metrics(engine, settings, hours=24, now=now)
        )
        report(f"summary 24h ({summary.total.runs:,} runs in window) over {size}", summary_s, 1)
        bottleneck_s, _ = timed(lambda: find_bottlenecks(engine, hours=24, now=now))
        report(f"bottlenecks 24h over {size}", bottleneck_s, 1)
        dry_s, plan = timed(
            lambda: cleanup_task_logs(engine, settings, keep_days=30, dry_run=True, now=now)
        )
        report(f"cleanup --dry-run (would delete {plan.deleted:,}) over {size}", dry_s, 1)
        whole_s, whole = timed(
            lambda: summarise_task_metrics(engine, settings, hours=24 * DAYS, now=now), repeat=1
        )
        report(
            f"summary over all 90 days ({whole.total.runs:,} runs in window, reads raw rows: "
            f"cost grows with the window) over {size}",
            whole_s,
        )
        whole_b, _ = timed(lambda: find_bottlenecks(engine, hours=24 * DAYS, now=now), repeat=1)
        report(f"bottlenecks over all 90 days (all runs in window) over {size}", whole_b)

        # The first --trends after rows arrived outside the dispatcher (an upgraded
        # library) folds them all once: ~1 s per 300,000 rows here; the target
        # scales with the rows, so a slower fold shows as a miss.
        first_s, first = timed(lambda: task_trends(engine, settings, days=DAYS, now=now), 1)
        report(
            f"first trends 90 days after {total:,} rows written outside the dispatcher "
            f"(folds {first.fold.folded:,} rows once) over {size}",
            first_s,
            max(1.0, 6.0 * total / 1_000_000),
        )
        fold_s, fold = timed(lambda: fold_task_logs(engine, settings, now=now), repeat=1)
        report(f"fold again with nothing new ({fold.folded:,} rows) over {size}", fold_s, 0.1)
        trends_s, trend = timed(lambda: task_trends(engine, settings, days=DAYS, now=now), 5)
        report(f"trends 90 days ({len(trend.by_type)} types) over {size}", trends_s, 0.1)
        _append_recent(engine, 1000, now)
        fresh_s, fresh = timed(lambda: task_trends(engine, settings, days=DAYS, now=now), repeat=1)
        report(
            f"trends 90 days incl. folding {fresh.fold.folded:,} new rows over {size}", fresh_s, 0.1
        )
        clean_s, cleaned = timed(
            lambda: cleanup_task_logs(engine, settings, keep_days=30, now=now), repeat=1
        )
        report(f"cleanup --keep-days 30 (deleted {cleaned.deleted:,}) over {size}", clean_s)
        after_s, _ = timed(lambda: task_trends(engine, settings, days=DAYS, now=now), 5)
        report(f"trends 90 days after cleanup over {size}", after_s, 0.1)
    finally:
        engine.dispose()


def _append_recent(engine: Any, count: int, now: datetime) -> None:
    """``count`` new finished runs in the last minutes, as the dispatcher would add them."""
    with engine.begin() as connection:
        top = connection.scalar(text("SELECT max(id) FROM task_logs")) or 0
        rows = []
        for i in range(count):
            moment = now - timedelta(seconds=count - i)
            rows.append(
                {
                    "id": top + i + 1,
                    "task_id": top + i + 1,
                    "task_type": "ingest",
                    "status": "completed",
                    "duration_ms": 100 + i % 50,
                    "retries": 0,
                    "created_at": moment,
                }
            )
        from atlas.db.tables import task_logs

        connection.execute(task_logs.insert(), rows)


# --- dispatcher overhead ----------------------------------------------------------


@task_type("bench-noop")
def noop(ctx: TaskContext) -> None:
    """Does nothing: measures what running through the dispatcher costs."""


class _UnloggedDispatcher(Dispatcher):
    """The same dispatcher with its task_logs writes left out (for the comparison)."""

    def _open_log(self, connection: Any, *args: Any) -> int:
        return 0

    def _close(
        self, task_id: int, task_type: str, log_id: int, status: str, **kwargs: Any
    ) -> TaskOutcome:
        from sqlalchemy import update

        from atlas.db import utcnow
        from atlas.db.tables import tasks

        with self.engine.begin() as connection:
            connection.execute(
                update(tasks)
                .where(tasks.c.id == task_id)
                .values(status=status, result=kwargs.get("result"), finished_at=utcnow())
            )
        return TaskOutcome(task_id, task_type, status, result=kwargs.get("result"))


def dispatcher_overhead(url: str, backend: str, n: int) -> None:
    """ms per task: submit (logged) vs a direct call, and logged vs not logged.

    The three variants run interleaved in rounds, so a change in the load of a
    shared machine shifts them alike instead of biasing the difference.
    """
    home = Path(tempfile.mkdtemp(prefix="atlas-bench-home-"))
    try:
        settings = load_settings(
            home=home, overrides={"database_url": url, "auto_process": False}, environ={}
        ).settings
        atlas = open_atlas(settings)
        unlogged_dispatcher = _UnloggedDispatcher(settings, atlas.engine)
        for _ in range(50):  # warm up connections and statement caches
            atlas.dispatcher.submit("bench-noop")
            unlogged_dispatcher.submit("bench-noop")
        totals = {"direct": 0.0, "logged": 0.0, "unlogged": 0.0}
        rounds, per_round = 10, max(1, n // 10)
        for _ in range(rounds):
            clock = time.perf_counter()
            for _ in range(per_round):
                noop(None)  # type: ignore[arg-type]
            totals["direct"] += time.perf_counter() - clock
            clock = time.perf_counter()
            for _ in range(per_round):
                atlas.dispatcher.submit("bench-noop")
            totals["logged"] += time.perf_counter() - clock
            clock = time.perf_counter()
            for _ in range(per_round):
                unlogged_dispatcher.submit("bench-noop")
            totals["unlogged"] += time.perf_counter() - clock
        atlas.close()
        count = rounds * per_round
        per_task = (totals["logged"] - totals["direct"]) / count
        logging_only = (totals["logged"] - totals["unlogged"]) / count

        # The target is for SQLite; PostgreSQL waits for a durable commit per transaction.
        def verdict(seconds: float) -> str:
            if backend != "sqlite":
                return "(no target on PostgreSQL: each commit waits for its WAL flush)"
            if seconds >= 0.002:
                MISSED.append(f"{backend} dispatcher overhead")
            return f"(target < 2 ms: {'met' if seconds < 0.002 else 'MISSED'})"

        print(
            f"dispatcher overhead per task ({backend}, N={count}, no-op task via "
            f"Dispatcher.submit in-process vs direct call): {per_task * 1000:.3f} ms/task "
            f"{verdict(per_task)}"
        )
        print(
            f"task_logs writes per task ({backend}, N={count}, the same dispatcher logged vs "
            f"not logged): {logging_only * 1000:.3f} ms/task {verdict(logging_only)}"
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --- main ------------------------------------------------------------------------------


def parse_rows(value: str) -> list[int]:
    sizes = []
    for part in value.split(","):
        part = part.strip().upper()
        factor = 1_000_000 if part.endswith("M") else 1_000 if part.endswith("K") else 1
        sizes.append(int(float(part.rstrip("MK")) * factor))
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="1M",
        help="sizes to test, comma-separated (default 1M; 1M,10M for both: 10M on "
        "SQLite needs about 4 GB of disk and several minutes to generate)",
    )
    parser.add_argument("--postgres", default=os.environ.get("ATLAS_TEST_POSTGRES_URL"))
    parser.add_argument("--no-sqlite", action="store_true", help="only PostgreSQL")
    parser.add_argument("--overhead-n", type=int, default=2000)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="where SQLite files go")
    args = parser.parse_args()

    now = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="atlas-bench-", dir=args.workdir))
    try:
        for total in parse_rows(args.rows):
            if not args.no_sqlite:
                path = workdir / f"analytics-{total}.db"
                engine = make_engine(f"sqlite:///{path}")
                upgrade(engine)
                engine.dispose()
                clock = time.perf_counter()
                load_sqlite(path, total, now)
                print(
                    f"generated {total:,} rows on sqlite in {time.perf_counter() - clock:.1f} s "
                    "(not timed)"
                )
                run_analyses("sqlite", f"sqlite:///{path}", total, now)
                path.unlink()
            if args.postgres:
                with _postgres_schema(args.postgres) as url:
                    engine = make_engine(url)
                    upgrade(engine)
                    engine.dispose()
                    clock = time.perf_counter()
                    load_postgres(_psycopg_url(url), total, now)
                    print(
                        f"generated {total:,} rows on postgresql in "
                        f"{time.perf_counter() - clock:.1f} s (not timed)"
                    )
                    run_analyses("postgresql", url, total, now)
        if not args.skip_overhead:
            if not args.no_sqlite:
                dispatcher_overhead(
                    f"sqlite:///{workdir / 'overhead.db'}", "sqlite", args.overhead_n
                )
            if args.postgres:
                with _postgres_schema(args.postgres) as url:
                    dispatcher_overhead(url, "postgresql", args.overhead_n)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"analytics: {len(MISSED)} target(s) missed" + (f": {'; '.join(MISSED)}" if MISSED else "")
    )
    return 1 if MISSED else 0


class _postgres_schema:
    """A throwaway schema, dropped on exit; yields a URL whose search_path points at it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(normalise_url(base_url))

    def __enter__(self) -> str:
        with self.admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        separator = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{separator}options=-csearch_path%3D{self.schema}"

    def __exit__(self, *exc: object) -> None:
        with self.admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self.admin.dispose()


def _psycopg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


if __name__ == "__main__":
    sys.exit(main())
