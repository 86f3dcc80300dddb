"""Fault injection: SIGKILL at random moments of a real ingest chain, then recovery.

Fifty real speech files go through ingest, transcription, tagging and embedding
while ``atlas`` processes are killed with SIGKILL at random moments: in-process
commands (SQLite and the embedded vector store), and worker processes sharing a
queue (PostgreSQL and Redis when the suite has them, else SQLite; a Chroma
server this test starts). Afterwards every file has exactly one media row, one
transcript, a tagging and one vector, no run is left ``running``, and every run
a kill cut short was retried. ``benchmarks/fault_injection.py`` does the same
with many more kills and prints how fast tasks ran again.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

import pytest

from atlas.app import open_atlas
from atlas.config import load_settings
from chaos import (
    Chaos,
    check_library,
    make_speech_library,
    rerun_delays,
    run_inline_with_kills,
    vector_ids,
    workers_with_kills,
)
from conftest import POSTGRES_URL, REDIS_URL, requires_ffmpeg

pytestmark = [pytest.mark.slow, requires_ffmpeg]

FILES = 50
KILLS = 6


@pytest.fixture(scope="module")
def speech_library(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_speech_library(tmp_path_factory.mktemp("speech") / "library", FILES)


def _env(home: Path, **settings: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")},
        "ATLAS_HOME": str(home),
        "ATLAS_AUTO_PROCESS": "true",
        # Keyphrases are most of the tagging time and beside the point here.
        "ATLAS_TAGGING__KEYPHRASES": "0",
        "ATLAS_EXECUTION__LEASE_S": "6",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **settings,
    }


def _settings(env: dict[str, str]):
    return load_settings(environ=env).settings


@pytest.mark.timeout(900)
def test_random_kills_of_in_process_commands_lose_and_double_nothing(speech_library, tmp_path):
    env = _env(tmp_path / "home")
    chaos = Chaos(env, random.Random(15))
    try:
        code, output = run_inline_with_kills(
            chaos, speech_library[0].parent, kills=KILLS, window_s=(1.5, 8.0)
        )
    finally:
        chaos.close()
    assert code == 0, output
    assert sum(kill.landed for kill in chaos.kills) >= 3

    atlas = open_atlas(_settings(env))
    check = check_library(atlas.engine, speech_library, vector_ids(atlas.settings))
    atlas.close()
    assert check.problems == [], output
    # Kills that landed while a task ran left dead runs, each retried to completion.
    assert check.lost_runs >= 1
    assert check.retried_after_death >= 1


@pytest.mark.timeout(900)
def test_random_kills_of_workers_lose_and_double_nothing(speech_library, tmp_path, chroma_server):
    host, port = chroma_server
    if POSTGRES_URL:
        from sqlalchemy import create_engine, text

        from atlas.db.engine import normalise_url

        schema = f"chaos_{uuid.uuid4().hex[:10]}"
        with create_engine(normalise_url(POSTGRES_URL)).begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in POSTGRES_URL else "?"
        database_url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    else:
        database_url = f"sqlite:///{tmp_path / 'atlas.db'}"
    queue_url = REDIS_URL or f"sqlite:///{tmp_path / 'queue.db'}"
    env = _env(
        tmp_path / "home",
        ATLAS_DATABASE_URL=database_url,
        ATLAS_QUEUE_URL=queue_url,
        ATLAS_QUEUE_NAME=f"chaos-{uuid.uuid4().hex[:8]}",
        ATLAS_CHROMA__HOST=host,
        ATLAS_CHROMA__PORT=str(port),
        ATLAS_CHROMA__COLLECTION=f"chaos{uuid.uuid4().hex[:8]}",
    )
    atlas = open_atlas(_settings(env))
    chaos = Chaos(env, random.Random(17))
    try:
        workers_with_kills(
            chaos,
            atlas.engine,
            speech_library[0].parent,
            workers=2,
            kills=KILLS,
            interval_s=(1.0, 5.0),
        )
    finally:
        chaos.close()
        atlas.dispatcher.queue.huey.flush()
    check = check_library(atlas.engine, speech_library, vector_ids(atlas.settings))
    delays = list(rerun_delays(atlas.engine, chaos.kills))
    atlas.close()
    assert check.problems == []
    assert sum(kill.landed for kill in chaos.kills) >= KILLS
    assert check.lost_runs >= 1 and check.retried_after_death >= 1
    assert delays, "no killed run was seen running again"
    print(f"workers: {len(delays)} killed run(s) ran again after at most {max(delays):.1f} s")
