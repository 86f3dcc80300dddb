"""A long-running process's copy of the vectors answers like the store and stays current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, select, update
from tests.conftest import STATION

from atlas.app import open_atlas
from atlas.caches import CACHES
from atlas.db.tables import media, media_embeddings, search_changes
from atlas.embeddings import embed_media, search_media, similar_media
from atlas.embeddings.live import Entry, VectorTable, live_vectors
from atlas.embeddings.providers import get_provider
from atlas.embeddings.store import get_store
from atlas.errors import NotFound
from atlas.library import Library
from atlas.media.catalog import CatalogEntry, store_entries
from atlas.media.tags import Tag, upsert_tags


def _model(atlas: Any) -> str:
    return get_provider(atlas.settings).model_id


def _stored(atlas: Any) -> dict[int, np.ndarray]:
    """Every vector the store holds for the model."""
    collection = get_store(atlas.settings).collection(_model(atlas), 384, create=False)
    assert collection is not None
    ids, matrix = collection.all_vectors()
    return dict(zip(ids, matrix, strict=True))


def _similar(atlas: Any, media_id: int, live: bool, **options: Any) -> list[tuple[int, float]]:
    found = similar_media(atlas.settings, atlas.engine, media_id, top=20, live=live, **options)
    return [(hit.media_id, hit.score) for hit in found.hits]


def _same(ours: list[tuple[int, float]], theirs: list[tuple[int, float]]) -> None:
    """Same items in the same order, scores to within float32 rounding."""
    assert [m for m, _ in ours] == [m for m, _ in theirs]
    assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], abs=1e-5)


def _search(atlas: Any, query: str, live: bool, **options: Any) -> list[int]:
    found = search_media(atlas.settings, atlas.engine, query, top=20, live=live, **options)
    return [hit.media_id for hit in found.hits]


def test_the_copy_in_memory_answers_like_the_vector_store(atlas, embedded_library):
    table = live_vectors(atlas.settings, atlas.engine, _model(atlas))
    stored = _stored(atlas)
    assert len(table) == len(stored) == len(embedded_library)
    for media_id, vector in table.vectors(list(stored)).items():
        assert vector == pytest.approx(stored[media_id], abs=1e-6)
    for media_id in embedded_library.values():
        _same(_similar(atlas, media_id, live=True), _similar(atlas, media_id, live=False))
    for query in ("space rocket", "a detective solves a murder", "bread and dumplings"):
        for mode in ("vector", "hybrid"):
            assert _search(atlas, query, True, mode=mode) == _search(atlas, query, False, mode=mode)
        audio = _search(atlas, query, True, mode="vector", media_type="audio")
        assert audio == _search(atlas, query, False, mode="vector", media_type="audio")
        assert len(audio) == 3


def test_the_copy_follows_embeds_deletes_and_confirmed_genres(atlas, embedded_library):
    kitchen, vault = embedded_library["Kitchen Chemistry"], embedded_library["The Vault Job"]
    dumplings = embedded_library["Sunday Dumplings"]
    assert _search(atlas, "space rocket", True, mode="vector", genre="Zydeco") == []

    with atlas.engine.begin() as connection:
        upsert_tags(connection, kitchen, [Tag("Zydeco", kind="genre", source="user")])
        connection.execute(delete(media).where(media.c.id == dumplings))
    assert _search(atlas, "space rocket", True, mode="vector", genre="Zydeco") == [kitchen]
    with atlas.engine.begin() as connection:
        upsert_tags(connection, vault, [Tag("Zydeco", kind="genre", source="user")])
    # "More like this" ranks the pool by the copy's genres: as by the database's.
    _same(_similar(atlas, kitchen, live=True), _similar(atlas, kitchen, live=False))
    found = similar_media(atlas.settings, atlas.engine, kitchen, top=20, live=True)
    assert "same genre: Zydeco" in {hit.media_id: hit.why for hit in found.hits}[vault]
    assert dumplings not in _search(atlas, "bread dumplings", True, mode="vector")

    # The item's text changed: embedding it again replaces its vector in the copy.
    with atlas.engine.begin() as connection:
        connection.execute(
            update(media).where(media.c.id == vault).values(description="A cake recipe.")
        )
    report = embed_media(atlas.dispatcher, media_ids=[vault])
    assert report.embedded == 1
    table = live_vectors(atlas.settings, atlas.engine, _model(atlas))
    assert table.vectors([vault])[vault] == pytest.approx(_stored(atlas)[vault], abs=1e-6)
    assert dumplings not in table and len(table) == len(embedded_library) - 1


def test_a_copy_made_before_anything_was_embedded_takes_the_first_vectors(
    atlas, themed_library, embedding_model
):
    assert len(live_vectors(atlas.settings, atlas.engine, _model(atlas))) == 0
    with pytest.raises(NotFound, match="nothing is embedded"):
        _search(atlas, "space rocket", True, mode="vector")
    assert embed_media(atlas.dispatcher, all_media=True).embedded == len(themed_library)
    assert len(live_vectors(atlas.settings, atlas.engine, _model(atlas))) == len(themed_library)
    assert _search(atlas, "space rocket", True, mode="vector") == _search(
        atlas, "space rocket", False, mode="vector"
    )


def test_vectors_recorded_before_the_database_kept_them_are_read_from_the_store(
    atlas, embedded_library
):
    kitchen = embedded_library["Kitchen Chemistry"]
    with atlas.engine.begin() as connection:
        connection.execute(update(media_embeddings).values(vector=None))
        connection.execute(delete(search_changes))
    CACHES.live_vectors.clear()
    before = _similar(atlas, kitchen, live=True)
    _same(before, _similar(atlas, kitchen, live=False))
    # A change of the item that leaves its vector alone keeps it in the copy.
    with atlas.engine.begin() as connection:
        upsert_tags(connection, kitchen, [Tag("Lighthouse", source="user")])
    assert kitchen in live_vectors(atlas.settings, atlas.engine, _model(atlas))
    assert [m for m, _ in _similar(atlas, kitchen, live=True)] == [m for m, _ in before]


def test_a_server_finds_what_another_process_embedded_after_it_started(
    atlas, embedded_library, home: Path, database_url: str
):
    """The embedded store shows a process only the vectors it had when it opened; the
    copy reads what another process (a worker) embedded later from the database."""
    kitchen = embedded_library["Kitchen Chemistry"]
    # Both read once: the copy is built, and the store has loaded its index for queries.
    _same(_similar(atlas, kitchen, live=True), _similar(atlas, kitchen, live=False))
    (created,), _ = store_entries(atlas.engine, [CatalogEntry.model_validate(STATION)])
    command = [sys.executable, "-m", "atlas", "--home", str(home)]
    command += ["--database-url", database_url, "embed-media", "--all"]
    env = {**os.environ, "ATLAS_AUTO_PROCESS": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with atlas.engine.connect() as connection:
        assert connection.scalar(
            select(media_embeddings.c.id).where(media_embeddings.c.media_id == created)
        )

    assert _search(atlas, "astronauts aboard a space station", True, mode="vector")[0] == created
    near = [m for m, _ in _similar(atlas, created, live=True)]
    assert near[:3] == _search(atlas, STATION["description"], True, mode="vector")[1:4]


def _entries(rng: np.random.Generator, ids: range, genre: str) -> dict[int, Entry]:
    vectors = rng.normal(size=(len(ids), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return {
        media_id: Entry(vectors[i], "video" if media_id % 3 else "audio", frozenset({genre}))
        for i, media_id in enumerate(ids)
    }


def _ranked(table: VectorTable, query: np.ndarray, **filters: Any) -> list[tuple[int, float]]:
    return [(n.media_id, round(n.similarity, 5)) for n in table.query(query, 25, **filters)]


@pytest.mark.parametrize("changed", [10, 900])
def test_a_replaced_table_ranks_like_one_built_from_scratch(changed):
    """Small changes stay in the delta; large ones are merged into a new base."""
    rng = np.random.default_rng(7)
    entries: dict[int, Entry | None] = dict(_entries(rng, range(1, 2001), "drama"))
    table = VectorTable(8, {m: e for m, e in entries.items() if e is not None})
    changes: dict[int, Entry | None] = dict(_entries(rng, range(1500, 1500 + changed), "comedy"))
    changes.update(dict.fromkeys(range(1, 1 + changed // 2)))  # removed
    kept = table.replaced(changes)
    entries.update(changes)
    fresh = VectorTable(8, {m: e for m, e in entries.items() if e is not None})
    assert len(kept) == len(fresh)
    for _ in range(5):
        query = rng.normal(size=8).astype(np.float32)
        for filters in ({}, {"media_type": "audio"}, {"genre": "comedy"}, {"genre": "drama"}):
            assert _ranked(kept, query, **filters) == _ranked(fresh, query, **filters)
    some = [1, 2, 1600, 1999, 5000]
    assert kept.vectors(some).keys() == fresh.vectors(some).keys()


def test_warming_up_loads_the_indexes_and_says_what_it_could_not_load(
    atlas, embedded_library, make_settings
):
    library = Library(atlas)
    library.live_vectors = True
    assert library.warm_up() == []
    assert CACHES.lexical.get(str(atlas.engine.url), lambda: pytest.fail("not loaded"))
    key = f"{atlas.engine.url}|{_model(atlas)}"
    assert len(CACHES.live_vectors.get(key, lambda: pytest.fail("not loaded")).value) == 12

    unreachable = make_settings(
        auto_process=False,
        **{"embedding.provider": "ollama", "embedding.ollama_host": "http://127.0.0.1:9"},
    )
    other = open_atlas(unreachable)
    try:
        problems = Library(other).warm_up()
    finally:
        other.close()
    assert len(problems) == 1 and problems[0].startswith("embedding model: ")
