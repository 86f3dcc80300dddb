"""``atlas migrate-store``: a SQLite library and its embedded vectors copied to PostgreSQL and
a Chroma server, exactly, resumably after kill -9, verified, the library left as it was."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import (
    JSON,
    Engine,
    Text,
    cast,
    create_engine,
    func,
    insert,
    null,
    select,
    text,
    update,
)

from _feedback import add_item
from atlas.app import open_atlas
from atlas.caches import clear_caches
from atlas.config import Settings, load_settings
from atlas.db.engine import normalise_url
from atlas.db.tables import (
    autolearn_recommendations,
    autolearn_runs,
    autolearn_schedule,
    learning_rules,
    library_roots,
    media,
    media_clusters,
    media_embeddings,
    media_sidecars,
    media_tag_inputs,
    media_tag_rejections,
    media_tags,
    metadata,
    rule_applications,
    tagger_models,
    tagger_tuning,
    task_log_daily,
    task_log_fold_state,
    task_logs,
    tasks,
    transcripts,
    user_feedback,
)
from atlas.embeddings.store import VectorStore
from atlas.storage import migrate_store
from conftest import POSTGRES_URL, free_port

needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="set ATLAS_TEST_POSTGRES_URL to copy into PostgreSQL"
)
MODEL = "sentence-transformers:all-MiniLM-L6-v2"
SRC = Path(__file__).resolve().parents[1] / "src"


# --- fixtures: a SQLite library, an empty PostgreSQL schema, a collection prefix ------------


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The library being moved is always an embedded (SQLite) one."""
    return f"sqlite:///{tmp_path / 'home' / 'atlas.db'}"


@pytest.fixture
def prefix() -> str:
    """Collection names of this test's library (the Chroma server is shared by the session)."""
    return f"m{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_settings(home: Path, database_url: str, prefix: str) -> Any:
    def make(**overrides: Any) -> Settings:
        values = {"database_url": database_url, "chroma.collection": prefix, **overrides}
        return load_settings(home=home, overrides=values, environ={}).settings

    return make


@pytest.fixture
def run(cli: Any, prefix: str) -> Any:
    """``atlas ARGS`` in-process against this test's library."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return cli(*args, env={"ATLAS_CHROMA__COLLECTION": prefix, **(env or {})})

    return invoke


def _empty_schema() -> Iterator[str]:
    assert POSTGRES_URL is not None
    schema = f"ms_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(POSTGRES_URL))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def target_url() -> Iterator[str]:
    """An empty PostgreSQL schema to copy into."""
    if not POSTGRES_URL:
        pytest.skip("set ATLAS_TEST_POSTGRES_URL to copy into PostgreSQL")
    yield from _empty_schema()


@pytest.fixture
def other_target_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("set ATLAS_TEST_POSTGRES_URL to copy into PostgreSQL")
    yield from _empty_schema()


# --- a generated library: every table, awkward values, forward links ------------------------


def _at(rng: random.Random) -> datetime:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    return base + timedelta(seconds=rng.randrange(0, 10**8), microseconds=rng.randrange(10**6))


def generate_library(settings: Settings, *, items: int, seed: int = 7) -> None:
    """A library with rows in every table, written straight into its SQLite database,
    and one vector per item in its embedded store."""
    rng = random.Random(seed)
    atlas = open_atlas(settings)
    try:
        with atlas.engine.begin() as c:
            c.execute(
                insert(library_roots),
                [{"path": f"/srv/media/{n}", "added_at": _at(rng)} for n in range(3)],
            )
            c.execute(
                insert(media),
                [
                    {
                        "id": n,
                        "path": f"/srv/media/0/item {n} é.mkv" if n % 4 else None,
                        "origin": "file" if n % 4 else "catalog",
                        "content_hash": hashlib.blake2b(
                            str(n).encode(), digest_size=32
                        ).hexdigest(),
                        "size_bytes": 2**40 + n,
                        "mtime": 1_700_000_000.123456 + n,
                        "media_type": ("video", "audio", "image", "other")[n % 4],
                        "duration_s": n / 7 if n % 3 else None,
                        "streams": [{"codec": "h264", "index": 0, "tags": {"lang": "eng"}}]
                        if n % 2
                        else null(),
                        "container_tags": {"title": f"Tïtle {n}", "nested": [1, 2.5, None]}
                        if n % 3
                        else None,  # JSON null, not SQL NULL
                        "title": f"Item {n} ✓ \"quoted\" 'x'",
                        "genre": rng.choice(["Drama", "Comedy", None]),
                        "description": "line one\nline two\ttab" * (n % 3),
                        "year": 1950 + n % 70,
                        "rating": (n % 11) / 2,
                        "external_id": f"ext-{n}" if n % 5 == 0 else None,
                        "words": "alpha beta gamma",
                        "missing": n % 13 == 0,
                        "has_video": n % 2 == 0,
                        "created_at": _at(rng),
                        "updated_at": _at(rng),
                        "probed_at": _at(rng) if n % 2 else None,
                    }
                    for n in range(1, items + 1)
                ],
            )
            c.execute(
                insert(media_sidecars),
                [
                    {
                        "media_id": n,
                        "path": f"/srv/media/0/item {n}.srt",
                        "kind": "subtitle",
                        "format": "srt",
                        "language": "en",
                        "size_bytes": 100,
                        "mtime": 1.5,
                        "created_at": _at(rng),
                    }
                    for n in range(1, items + 1, 10)
                ],
            )
            c.execute(
                insert(media_tags),
                [
                    {
                        "media_id": n,
                        "tag": tag,
                        "tag_norm": tag.lower(),
                        "kind": "topic",
                        "source": rng.choice(["auto", "user", "rule"]),
                        "confidence": rng.random(),
                        "explanation": "because",
                        "created_at": _at(rng),
                        "updated_at": _at(rng),
                    }
                    for n in range(1, items + 1)
                    for tag in ("Space", f"Tag {n % 50}")
                ],
            )
            c.execute(
                insert(media_tag_inputs),
                [
                    {
                        "media_id": n,
                        "model": MODEL,
                        "text_hash": "a" * 64,
                        "dimension": 384,
                        "vector": np.random.default_rng(n).random(384, dtype=np.float32).tobytes(),
                        "input_hash": "b" * 64 if n % 2 else None,
                        "withheld": json.dumps([{"tag": "x", "confidence": 0.1}]),
                        "tagged_at": _at(rng),
                        "updated_at": _at(rng),
                    }
                    for n in range(1, items + 1, 2)
                ],
            )
            c.execute(
                insert(tagger_models),
                [
                    {
                        "model": MODEL,
                        "tags": [{"tag": "space", "norm": "space", "positives": 9}],
                        "training": {"layers": 2, "epochs": 6, "seconds": 12.5},
                        "weights": rng.randbytes(1_500_000),
                        "created_at": _at(rng),
                    }
                    for _ in range(3)
                ],
            )
            c.execute(
                insert(transcripts),
                [
                    {
                        "media_id": n,
                        "text": f"words of item {n}",
                        "segments": [{"start": 0.0, "end": 1.25, "text": "words"}],
                        "language": "en",
                        "language_probability": 0.987654321,
                        "source": "whisper",
                        "model": "tiny.en",
                        "wall_time_s": 0.3,
                        "created_at": _at(rng),
                    }
                    for n in range(2, items + 1, 2)
                ],
            )
            c.execute(
                insert(media_embeddings),
                [
                    {
                        "media_id": n,
                        "model": MODEL,
                        "dimension": 384,
                        "collection": "c",
                        "doc_hash": "d" * 64,
                        "doc_chars": 100,
                        "embedded_at": _at(rng),
                    }
                    for n in range(1, items + 1)
                ],
            )
            c.execute(
                text(
                    "INSERT INTO clusters (model, cluster, name, tags, size, method, created_at)"
                    " VALUES (:m, :k, :n, '[\"space\"]', 5, 'kmeans', '2024-01-01 00:00:00')"
                ),
                [{"m": MODEL, "k": k, "n": f"cluster {k}"} for k in range(3)],
            )
            c.execute(
                insert(media_clusters),
                [{"media_id": n, "model": MODEL, "cluster": n % 3} for n in range(1, items + 1)],
            )
            task_count = items
            c.execute(
                insert(tasks),
                [
                    {
                        "id": n,
                        "task_type": "embed",
                        "status": "completed",
                        "params": {"media_ids": [n, n + 1]},
                        "result": {"embedded": 2} if n % 3 else None,
                        "attempts": 1,
                        "created_at": _at(rng),
                        "started_at": _at(rng),
                        "finished_at": _at(rng),
                        "worker": "w1",
                    }
                    for n in range(1, task_count + 1)
                ],
            )
            # Links to rows of later batches (the copy sets them once those rows exist).
            c.execute(
                update(media)
                .where(media.c.id % 11 == 1, media.c.id + 9 <= items)
                .values(duplicate_of=media.c.id + 9)
            )
            c.execute(
                update(tasks)
                .where(tasks.c.id % 13 == 2, tasks.c.id + 8 <= task_count)
                .values(parent_id=tasks.c.id + 8)
            )
            c.execute(
                insert(task_logs),
                [
                    {
                        "task_id": 1 + n % task_count,
                        "task_type": "embed",
                        "status": rng.choice(["completed", "error", "running"]),
                        "duration_ms": rng.randrange(10**6),
                        "retries": n % 3,
                        "error_reason": "boom" if n % 5 == 0 else None,
                        "created_at": _at(rng),
                        "queue_wait_ms": 5,
                    }
                    for n in range(items * 4)
                ],
            )
            c.execute(
                insert(task_log_daily),
                [
                    {
                        "day": date(2024, 1, 1) + timedelta(days=d),
                        "task_type": kind,
                        "runs": 3,
                        "completed": 2,
                        "failed": 1,
                        "cancelled": 0,
                        "unfinished": 0,
                        "retries": 1,
                        "retried_runs": 1,
                        "duration_count": 3,
                        "duration_sum_ms": 10**12,
                        "duration_min_ms": 1,
                        "duration_max_ms": 9,
                        "duration_histogram": [0, 1, 2],
                        "queued_runs": 3,
                        "queue_wait_sum_ms": 9,
                        "queue_wait_max_ms": 4,
                        "updated_at": _at(rng),
                    }
                    for d in range(40)
                    for kind in ("embed", "ingest", "tag")
                ],
            )
            c.execute(
                update(task_log_fold_state).values(
                    folded_through_id=17, pending_ids=[3, 5], cleaned_before=_at(rng)
                )
            )
            c.execute(
                insert(user_feedback),
                [
                    {
                        "media_id": n,
                        "feedback_type": "tag_correction",
                        "original_value": '["a"]',
                        "corrected_value": '["b"]',
                        "confidence_score": 0.9,
                        "timestamp": _at(rng),
                        "source": "user",
                    }
                    for n in range(1, items + 1, 3)
                ],
            )
            c.execute(
                insert(learning_rules),
                [
                    {
                        "rule_type": "tag_mapping",
                        "condition_text": '{"tag": "a"}',
                        "action_text": '{"replace": "b"}',
                        "confidence": 0.8,
                        "pattern_key": f"p{k}",
                        "examples": [1, 2, 3],
                        "enabled": k != 1,
                        "created_at": _at(rng),
                    }
                    for k in range(3)
                ],
            )
            c.execute(
                insert(rule_applications),
                [
                    {
                        "rule_id": 1 + n % 3,
                        "media_id": n,
                        "target": "tags",
                        "before": ["a"],
                        "after": ["b"],
                        "via": "loop",
                        "applied_at": _at(rng),
                    }
                    for n in range(1, items + 1, 5)
                ],
            )
            c.execute(
                insert(media_tag_rejections),
                [
                    {"media_id": n, "tag": "Robots", "tag_norm": "robots", "rejected_at": _at(rng)}
                    for n in range(1, items + 1, 7)
                ],
            )
            c.execute(
                insert(tagger_tuning),
                [
                    {
                        "model": MODEL,
                        "status": "learned" if k else "prior",
                        "items": 40 + k,
                        "genres": 6,
                        "weights": {"zero_shot": 0.2, "neighbours": 0.5 + k / 10},
                        "threshold": 0.24,
                        "genre_floor": 0.11,
                        "scores": {"prior": 0.61, "learned": 0.64, "folds": 5},
                        "reason": "trusts the neighbours most",
                        "created_at": _at(rng),
                    }
                    for k in range(2)
                ],
            )
            c.execute(
                insert(autolearn_recommendations),
                [
                    {
                        "kind": "embed-missing",
                        "status": status,
                        "insight_key": f"coverage:embed:{k}",
                        "insight": {"kind": "coverage", "media": [1, 2]},
                        "statement": "2 media are not embedded",
                        "action": {"kind": "embed-missing", "params": {"media": [1, 2]}},
                        "metric": "media not embedded",
                        "baseline": 2.0,
                        "data_key": hashlib.sha256(str(k).encode()).hexdigest(),
                        "safe": True,
                        "created_at": _at(rng),
                        "updated_at": _at(rng),
                        "applied_at": _at(rng) if status == "applied" else None,
                        "verdict": "kept" if status == "applied" else None,
                        "after": 0.0 if status == "applied" else None,
                    }
                    for k, status in enumerate(("new", "applied", "dismissed"))
                ],
            )
            c.execute(
                insert(autolearn_runs),
                [
                    {
                        "started_at": _at(rng),
                        "finished_at": _at(rng),
                        "task_id": None,
                        "insight_keys": [f"coverage:embed:{k}"],
                        "report": {"insights": k},
                    }
                    for k in range(2)
                ],
            )
            c.execute(
                insert(autolearn_schedule).values(
                    id=1,
                    quiet_hours=[3, 4, 5],
                    jobs=[{"job": "autolearn", "hour": 4}],
                    evidence={"arrivals": [19, 20, 21]},
                    created_at=_at(rng),
                )
            )
        ids = list(range(1, items + 1))
        vectors = np.random.default_rng(seed).random((items, 384), dtype=np.float32)
        collection = VectorStore(settings).collection(MODEL, 384)
        assert collection is not None
        collection.upsert(ids, vectors, [{"media_type": "video", "genres": ["Drama"]} for _ in ids])
    finally:
        atlas.close()
        clear_caches("library")
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()


# --- comparing the library and its copy ------------------------------------------------------


def _rows(engine: Engine, table: Any, *, raw: bool) -> list[tuple[Any, ...]]:
    """Every row, by primary key; with ``raw``, JSON columns as their stored text."""
    columns = [cast(c, Text) if raw and isinstance(c.type, JSON) else c for c in table.columns]
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(select(*columns).order_by(*table.primary_key.columns))
        ]


def assert_same_tables(source_url: str, target_url: str, *, every_table_filled: bool) -> None:
    source, target = create_engine(source_url), create_engine(normalise_url(target_url))
    try:
        for table in metadata.sorted_tables:
            typed = _rows(source, table, raw=False)
            assert typed == _rows(target, table, raw=False), table.name
            assert _rows(source, table, raw=True) == _rows(target, table, raw=True), table.name
            if every_table_filled:
                assert typed, f"the test library has no rows in {table.name}"
    finally:
        source.dispose()
        target.dispose()


def _vectors(store: VectorStore) -> dict[str, dict[str, Any]]:
    found = {}
    for raw in store.client.list_collections():
        if not raw.name.startswith(f"{store.prefix}-"):
            continue
        got = raw.get(include=["embeddings", "metadatas", "documents"])
        found[raw.name] = {
            "metadata": raw.metadata,
            "space": raw.configuration["hnsw"]["space"],
            "rows": {
                key: (np.asarray(vector, dtype=np.float32), meta, doc)
                for key, vector, meta, doc in zip(
                    got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True
                )
            },
        }
    return found


def assert_same_vectors(settings: Settings, host: str, port: int) -> int:
    """Every vector of the library is in the server: same id, metadata, document and values
    (to within float32 rounding: the embedded store returns values a unit in the last
    place off)."""
    server = settings.model_copy(
        update={"chroma": settings.chroma.model_copy(update={"host": host, "port": port})}
    )
    mine, theirs = _vectors(VectorStore(settings)), _vectors(VectorStore(server))
    assert mine and mine.keys() == theirs.keys()
    for name, collection in mine.items():
        copy = theirs[name]
        assert (collection["metadata"], collection["space"]) == (copy["metadata"], copy["space"])
        assert collection["rows"].keys() == copy["rows"].keys()
        for key, (vector, meta, doc) in collection["rows"].items():
            other, other_meta, other_doc = copy["rows"][key]
            assert (meta, doc) == (other_meta, other_doc)
            assert np.allclose(vector, other, rtol=1e-6, atol=1e-8), (name, key)
    return sum(len(c["rows"]) for c in mine.values())


def _fingerprint(home: Path) -> dict[str, str]:
    """The library's database by content: the file and its write-ahead log.

    (The shared-memory index, and an empty log a reader may leave, hold no data.)
    """
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.glob("atlas.db*"))
        if not path.name.endswith("-shm") and path.stat().st_size
    }


# --- the whole library, made by Atlas itself --------------------------------------------------


@needs_postgres
@pytest.mark.slow
@pytest.mark.small_feedback
def test_a_library_is_copied_with_every_row_id_and_vector_and_stays_as_it_was(
    run,
    tagger,
    make_settings,
    home,
    database_url,
    target_url,
    chroma_server,
    media_maker,
    tmp_path,
):
    host, port = chroma_server
    # Media, tags, vectors, tasks and task logs: the themed library, embedded and tagged.
    assert run("media-tags", "retag", "--all").exit_code == 0
    # A real file with a subtitle sidecar: library roots, sidecars, a transcript.
    folder = tmp_path / "films"
    media_maker.copy(media_maker.video("talk.mp4", seconds=1.0), folder / "talk.mp4")
    (folder / "talk.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHello there\n")
    assert run("media-ingest", str(folder)).exit_code == 0
    with tagger.engine.connect() as connection:
        film = connection.execute(select(media.c.id).where(media.c.path.like("%talk.mp4"))).scalar()
    transcribed = run("smart-transcribe", "--media", str(film))
    assert transcribed.exit_code == 0, transcribed.output
    # Feedback, rules and what the rules did.
    for n in range(4):
        item = add_item(tagger.engine, f"Taught {n}", auto=["sci-fi", f"extra{n}"])
        edit = run("track-tag-edits", "--media", str(item), "--tags", f"Science Fiction, extra{n}")
        assert edit.exit_code == 0, edit.output
    add_item(tagger.engine, "Unreviewed", auto=["sci-fi", "space"])
    assert run("run-feedback-loop").exit_code == 0
    # Every item with text embedded; clusters and the daily task summaries.
    assert run("embed-media", "--all").exit_code == 0
    assert run("clusters", "--k", "3").exit_code == 0
    assert run("analyze-task-metrics", "--trends").exit_code == 0
    # The tagger's tuning, an autolearn cycle with its advice, and the learned schedule.
    assert run("media-tags", "tuning", "--refresh").exit_code == 0
    assert run("autolearn", "run").exit_code == 0
    assert run("schedule", "apply").exit_code == 0
    # A fine-tuned model's weights (training it takes minutes; its row is what matters here).
    with tagger.engine.begin() as connection:
        connection.execute(
            insert(tagger_models).values(
                model=MODEL,
                tags=[{"tag": "space", "norm": "space", "kind": "topic", "positives": 4}],
                training={"layers": 2, "epochs": 6, "seconds": 1.25},
                weights=random.Random(1).randbytes(300_000),
                created_at=datetime.now(UTC),
            )
        )
        connection.execute(
            insert(media_tag_rejections).values(
                media_id=film, tag="Robots", tag_norm="robots", rejected_at=datetime.now(UTC)
            )
        )
        # A well-kept library gets no advice; one recommendation, as a cycle stores it.
        connection.execute(
            insert(autolearn_recommendations).values(
                kind="embed-missing",
                status="applied",
                insight_key="coverage:not-embedded",
                insight={"kind": "coverage", "evidence": {"media": [film]}},
                statement="1 media item is not embedded",
                action={"kind": "embed-missing", "params": {"media": [film]}},
                metric="media not embedded",
                baseline=1.0,
                data_key=hashlib.sha256(b"film").hexdigest(),
                safe=True,
                applied_at=datetime.now(UTC),
                verdict="kept",
                after=0.0,
            )
        )
    tagger.close()
    before = _fingerprint(home)

    result = run(
        "migrate-store", "--to-database", target_url, "--to-chroma", f"{host}:{port}", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verified"] and not report["resumed"] and report["mismatches"] == []
    assert {t["table"] for t in report["tables"]} == {t.name for t in metadata.sorted_tables}
    assert report["settings"] == {
        "database_url": target_url,
        "chroma.host": host,
        "chroma.port": port,
    }
    with create_engine(database_url).connect() as connection:
        embedded = connection.execute(select(func.count()).select_from(media_embeddings)).scalar()
    assert embedded > 12
    (collection,) = report["collections"]
    assert collection["source_vectors"] == collection["copied"] == embedded
    assert collection["sampled"] == embedded and collection["differing"] == 0

    # Every row with its id and exact values; every vector with its metadata.
    settings = make_settings()
    assert_same_tables(database_url, target_url, every_table_filled=True)
    assert assert_same_vectors(settings, host, port) == embedded
    # The library itself is untouched, and no settings file was written.
    assert _fingerprint(home) == before
    assert not (home / "atlas.toml").exists()

    # Running it again copies nothing and verifies again.
    again = run("migrate-store", "--to-database", target_url, "--to-chroma", f"{host}:{port}")
    assert again.exit_code == 0, again.output
    assert "already holds this library" in again.stdout
    assert "verified" in again.stdout and f'database_url = "{target_url}"' in again.stdout
    assert f'  [chroma]\n  host = "{host}"\n  port = {port}\n' in again.stdout

    # Atlas works on the copy: similar items come from the copied vectors, new rows get new ids.
    moved = {
        "ATLAS_DATABASE_URL": target_url,
        "ATLAS_CHROMA__HOST": host,
        "ATLAS_CHROMA__PORT": str(port),
    }
    similar = run("search-similar", "--media", "1", "--json", env=moved)
    assert similar.exit_code == 0, similar.output
    assert len(json.loads(similar.stdout)["results"]) > 0
    with create_engine(normalise_url(target_url)).connect() as connection:
        highest = {
            table.name: connection.execute(select(func.max(table.c.id))).scalar()
            for table in (media, tasks, task_logs, user_feedback, media_tags)
        }
    added = run("track-tag-edits", "--media", "1", "--tags", "Space, brand new", env=moved)
    assert added.exit_code == 0, added.output
    assert run("clusters", "--k", "2", env=moved).exit_code == 0  # a task, and its log
    with create_engine(normalise_url(target_url)).connect() as connection:
        assert connection.execute(select(func.max(user_feedback.c.id))).scalar() == (
            highest["user_feedback"] + 1
        )
        assert connection.execute(select(func.max(media_tags.c.id))).scalar() == (
            highest["media_tags"] + 1
        )
        for table in (tasks, task_logs):
            new_id = connection.execute(select(func.max(table.c.id))).scalar()
            assert new_id == highest[table.name] + 1, table.name

    # Once the copy is in use, running the command again overwrites nothing and says so.
    later = run("migrate-store", "--to-database", target_url)
    assert later.exit_code == 1
    assert later.stderr.startswith("atlas: the copy differs from the library: table ")
    assert later.stderr.count("\n") == 1
    with create_engine(normalise_url(target_url)).connect() as connection:
        assert (
            connection.execute(
                select(func.count()).select_from(media_tags).where(media_tags.c.tag == "brand new")
            ).scalar()
            == 1
        )


# --- kill -9 at random moments ----------------------------------------------------------------


def _progress(target_url: str, prefix: str, host: str, port: int) -> int:
    """Rows recorded as copied plus vectors in the server: how far the copy got."""
    engine = create_engine(normalise_url(target_url))
    try:
        with engine.connect() as connection:
            exists = connection.execute(text("SELECT to_regclass('atlas_store_copy')")).scalar()
            rows = (
                connection.execute(
                    text("SELECT coalesce(sum(copied), 0) FROM atlas_store_copy")
                ).scalar()
                if exists
                else 0
            )
    finally:
        engine.dispose()
    import httpx

    base = f"http://{host}:{port}/api/v2/tenants/default_tenant/databases/default_database"
    vectors = 0
    for collection in httpx.get(f"{base}/collections", timeout=10).json():
        if collection["name"].startswith(f"{prefix}-"):
            count = httpx.get(f"{base}/collections/{collection['id']}/count", timeout=10)
            vectors += int(count.json())
    return int(rows) + vectors


@needs_postgres
@pytest.mark.slow
def test_a_copy_killed_at_random_moments_finishes_without_duplicates(
    make_settings, home, database_url, target_url, chroma_server, prefix
):
    host, port = chroma_server
    settings = make_settings()
    generate_library(settings, items=2000)
    before = _fingerprint(home)
    command = [
        sys.executable,
        "-m",
        "atlas",
        "--home",
        str(home),
        "--database-url",
        database_url,
        "migrate-store",
        "--to-database",
        target_url,
        "--to-chroma",
        f"{host}:{port}",
        "--batch",
        "150",
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(SRC), "ATLAS_CHROMA__COLLECTION": prefix}
    env.pop("ATLAS_HOME", None)
    rng = random.Random()
    kills, seen = 0, 0
    for _ in range(4):
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Wait until this run has copied something more, then kill it a random moment later.
        while process.poll() is None and _progress(target_url, prefix, host, port) <= seen:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.6))
        if process.poll() is not None:
            process.communicate()
            break
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        kills += 1
        seen = _progress(target_url, prefix, host, port)
    assert kills >= 1, "every run finished before it could be killed; make the library larger"

    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert report["verified"] and report["resumed"]
    assert all(t["source_rows"] == t["target_rows"] for t in report["tables"])
    # Resumed, not redone: the rows the killed runs committed were not written again.
    assert sum(t["copied"] for t in report["tables"]) < sum(
        t["source_rows"] for t in report["tables"]
    )

    assert_same_tables(database_url, target_url, every_table_filled=True)
    assert assert_same_vectors(settings, host, port) == 2000
    assert _fingerprint(home) == before
    # New rows on the copy get ids after the copied ones.
    moved = make_settings(database_url=target_url)
    atlas = open_atlas(moved)
    try:
        with atlas.engine.begin() as connection:
            new_media = connection.execute(
                insert(media)
                .values(
                    media_type="video",
                    title="new",
                    created_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
                .returning(media.c.id)
            ).scalar()
            new_log = connection.execute(
                insert(task_logs)
                .values(task_id=1, task_type="embed", status="completed")
                .returning(task_logs.c.id)
            ).scalar()
    finally:
        atlas.close()
    assert new_media == 2001 and new_log == 8001


class _Interrupted(Exception):
    pass


@needs_postgres
def test_a_copy_interrupted_after_any_batch_goes_on_where_it_stopped(
    make_settings, database_url, target_url
):
    settings = make_settings()
    generate_library(settings, items=40)
    interrupted, result = 0, None
    for limit in range(20, 2000, 20):
        # Each run stops a little further on: after about `limit` rows in all.
        seen = 0

        def advance(rows: int, limit: int = limit) -> None:
            nonlocal seen
            seen += rows
            if seen > limit:
                raise _Interrupted

        try:
            result = migrate_store(
                settings, database_url=target_url, batch_rows=7, on_progress=advance
            )
            break
        except _Interrupted:
            interrupted += 1
    assert result is not None, "the copy never got to the end"
    assert interrupted > len(metadata.sorted_tables)
    assert result.verified and result.resumed
    # The last run wrote only what was left, not the rows earlier runs had written.
    assert sum(t.copied for t in result.tables) <= 20 + 7
    assert_same_tables(database_url, target_url, every_table_filled=True)
    with create_engine(database_url).connect() as connection:
        links = connection.execute(
            select(func.count()).select_from(media).where(media.c.duplicate_of > media.c.id)
        ).scalar()
        assert links and links >= 3  # rows that point at rows of later batches


# --- refusals -----------------------------------------------------------------------------------


@needs_postgres
def test_a_database_holding_another_library_is_refused_and_the_same_one_resumes(
    run, make_settings, tmp_path, target_url
):
    generate_library(make_settings(), items=40)
    first = run("migrate-store", "--to-database", target_url)
    assert first.exit_code == 0, first.output
    assert "copied sqlite:///" in first.stdout and "verified" in first.stdout
    assert "# vectors stay in the embedded store of this data dir" in first.stdout

    other_home = tmp_path / "other"
    other_home.mkdir()
    generate_library(load_settings(home=other_home, environ={}).settings, items=5, seed=3)
    refused = run(
        "migrate-store",
        "--to-database",
        target_url,
        env={
            "ATLAS_HOME": str(other_home),
            "ATLAS_DATABASE_URL": f"sqlite:///{other_home / 'atlas.db'}",
        },
    )
    assert refused.exit_code == 4
    assert refused.stderr.startswith("atlas: the database ")
    assert "already holds a copy of another library" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "--" not in refused.stderr

    again = run("migrate-store", "--to-database", target_url)
    assert again.exit_code == 0 and "already holds this library" in again.stdout


@needs_postgres
def test_a_database_already_used_by_atlas_is_refused(run, make_settings, other_target_url):
    generate_library(make_settings(), items=5)
    used = open_atlas(make_settings(database_url=other_target_url))
    with used.engine.begin() as connection:
        connection.execute(
            insert(library_roots).values(path="/elsewhere", added_at=datetime.now(UTC))
        )
    used.close()
    refused = run("migrate-store", "--to-database", other_target_url)
    assert refused.exit_code == 4
    assert "already holds an Atlas library (rows in library_roots)" in refused.stderr
    assert refused.stderr.count("\n") == 1


def test_bad_targets_end_in_one_clear_line(run, make_settings, home, tmp_path):
    generate_library(make_settings(), items=3)
    before = _fingerprint(home)
    pg = "postgresql://postgres@127.0.0.1:5432/test"
    cases = [
        (["--to-database", f"sqlite:///{tmp_path / 'x.db'}"], 2, "must be PostgreSQL"),
        (["--to-database", "mysql://u@h/db"], 2, "must be PostgreSQL"),
        (["--to-database", "  "], 2, "the target database URL is empty"),
        (["--to-database", "::not a url::"], 2, "not a valid URL"),
        (["--to-database", pg, "--to-chroma", "nohost"], 2, "host:port"),
        (["--to-database", pg, "--to-chroma", "h:0"], 2, "host:port"),
        (["--to-database", pg, "--to-chroma", "h:99999"], 2, "host:port"),
        (["--to-database", pg, "--to-chroma", "h:80:90"], 2, "host:port"),
        (["--to-database", pg, "--batch", "0"], 2, "at least 1"),
        (["--to-database", "postgresql://postgres@127.0.0.1:1/test"], 5, "cannot connect"),
        (["--to-database", pg, "--to-chroma", f"127.0.0.1:{free_port()}"], 5, "not reachable"),
    ]
    for args, code, words in cases:
        result = run("migrate-store", *args)
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.startswith("atlas: ") and words in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "--" not in result.stderr.replace("-csearch", "")
    assert _fingerprint(home) == before
    assert not (tmp_path / "x.db").exists()


def test_the_library_own_database_or_no_library_is_refused(run, tmp_path):
    pg = "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dlib"
    same = run(
        "migrate-store",
        "--to-database",
        pg.replace("postgresql", "postgres"),
        env={"ATLAS_DATABASE_URL": pg},
    )
    assert same.exit_code == 2
    assert "is the library's own database" in same.stderr and same.stderr.count("\n") == 1

    empty = tmp_path / "empty"
    missing = run(
        "migrate-store",
        "--to-database",
        pg,
        env={"ATLAS_HOME": str(empty), "ATLAS_DATABASE_URL": ""},
    )
    assert missing.exit_code == 3
    where = empty.resolve() / "atlas.db"
    assert missing.stderr == f"atlas: there is no library database at {where}\n"
    assert not empty.exists()


def test_a_library_behind_the_schema_is_refused_and_left_alone(run, database_url, home):
    from alembic import command

    from atlas.db import make_engine
    from atlas.db.migrate import _config

    engine = make_engine(database_url)
    with engine.connect() as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.commit()
    engine.dispose()
    before = _fingerprint(home)
    result = run("migrate-store", "--to-database", "postgresql://postgres@127.0.0.1:5432/test")
    assert result.exit_code == 4
    assert "is at revision 0005, behind" in result.stderr and "atlas migrate" in result.stderr
    assert _fingerprint(home) == before
