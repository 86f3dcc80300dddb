"""Embedding media: batches as tasks, change detection, crash safety, repair, pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import delete, func, select, update

from atlas.app import open_atlas
from atlas.db.tables import media, media_embeddings, media_tags, task_logs, tasks
from atlas.embeddings import embed as embed_module
from atlas.embeddings import embed_media, get_provider, get_store
from atlas.embeddings.repository import load_documents
from atlas.errors import InvalidInput, NotFound, Unavailable
from atlas.media import import_catalog, ingest_paths
from atlas.media.catalog import CatalogEntry, store_entries
from atlas.media.tags import Tag, upsert_tags
from conftest import THEMED_ITEMS, free_port

pytestmark = pytest.mark.slow

MODEL = "sentence-transformers:all-MiniLM-L6-v2"


def _records(engine, model=MODEL):
    with engine.connect() as connection:
        return {
            row.media_id: row
            for row in connection.execute(
                select(media_embeddings).where(media_embeddings.c.model == model)
            )
        }


def _assert_consistent(atlas, expected_ids, model=MODEL, dimension=384):
    """SQL and the store hold exactly the same items, with current documents."""
    records = _records(atlas.engine, model)
    assert set(records) == set(expected_ids)
    collection = get_store(atlas.settings).collection(model, dimension, create=False)
    assert collection is not None
    assert collection.count() == len(expected_ids)  # ids are unique: no duplicates
    assert collection.ids() == set(expected_ids)
    with atlas.engine.connect() as connection:
        documents = load_documents(connection, list(expected_ids))
    stored = collection.metadata(list(expected_ids))
    for media_id in expected_ids:
        assert records[media_id].doc_hash == documents[media_id].hash
        assert stored[media_id]["doc_hash"] == documents[media_id].hash


def _task_count(engine):
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(tasks))


def test_all_embeds_every_item_in_batches_each_logged_as_a_task(
    atlas, themed_library, embedding_model
):
    progress = []
    report = embed_media(
        atlas.dispatcher, all_media=True, batch_size=5, on_progress=progress.append
    )
    assert report.embedded == 12 and report.failed == []
    assert report.model == MODEL and report.dimension == 384
    assert report.batches == 3 and report.model_calls == 3 and progress == [5, 5, 2]
    with atlas.engine.connect() as connection:
        logs = (
            connection.execute(select(task_logs.c.status).where(task_logs.c.task_type == "embed"))
            .scalars()
            .all()
        )
    assert logs == ["completed"] * 3
    _assert_consistent(atlas, themed_library.values())


def test_second_all_with_nothing_changed_calls_no_model_and_runs_no_task(
    atlas, embedded_library, embedding_model, monkeypatch
):
    calls = []
    monkeypatch.setattr(embedding_model, "_embed", lambda texts: calls.append(texts))
    tasks_before = _task_count(atlas.engine)
    report = embed_media(atlas.dispatcher, all_media=True)
    assert calls == [] and report.model_calls == 0
    assert report.embedded == 0 and report.unchanged == 12 and report.batches == 0
    assert _task_count(atlas.engine) == tasks_before


def test_only_changed_items_are_embedded_again(
    atlas, embedded_library, embedding_model, monkeypatch
):
    changed = embedded_library["The Vault Job"]
    with atlas.engine.begin() as connection:
        upsert_tags(connection, changed, [Tag("safecracker", source="user")])
    texts = []
    original = embedding_model._embed
    monkeypatch.setattr(embedding_model, "_embed", lambda t: texts.extend(t) or original(t))
    report = embed_media(atlas.dispatcher, all_media=True)
    assert report.embedded == 1 and report.unchanged == 11
    assert len(texts) == 1 and "safecracker" in texts[0]
    _assert_consistent(atlas, embedded_library.values())


def test_force_embeds_everything_again(atlas, embedded_library):
    before = _records(atlas.engine)
    report = embed_media(atlas.dispatcher, all_media=True, force=True)
    assert report.embedded == 12
    after = _records(atlas.engine)
    assert all(after[m].embedded_at >= before[m].embedded_at for m in before)
    _assert_consistent(atlas, embedded_library.values())


def test_media_ids_embed_just_those_items(atlas, themed_library, embedding_model):
    wanted = [themed_library["Glass Alibi"], themed_library["Sunday Dumplings"]]
    report = embed_media(atlas.dispatcher, media_ids=wanted)
    assert report.embedded == 2 and report.selected == 2
    assert set(_records(atlas.engine)) == set(wanted)
    again = embed_media(atlas.dispatcher, media_ids=wanted)
    assert again.embedded == 0 and again.unchanged == 2


def test_crash_between_store_write_and_record_is_repaired_without_duplicates(
    atlas, themed_library, embedding_model, monkeypatch
):
    real_record = embed_module.record_embeddings
    calls = {"n": 0}

    def crash_on_second_batch(engine, records):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash after the store write")
        return real_record(engine, records)

    monkeypatch.setattr(embed_module, "record_embeddings", crash_on_second_batch)
    report = embed_media(atlas.dispatcher, all_media=True, batch_size=4)
    assert report.failed and "simulated crash" in report.failed[0]
    assert len(_records(atlas.engine)) == 4
    collection = get_store(atlas.settings).collection(MODEL, 384, create=False)
    assert collection.count() == 8  # the second batch reached the store, not the records

    monkeypatch.setattr(embed_module, "record_embeddings", real_record)
    again = embed_media(atlas.dispatcher, all_media=True, batch_size=4)
    assert again.failed == [] and again.embedded == 8
    _assert_consistent(atlas, themed_library.values())


def test_kill_9_mid_run_then_the_same_command_leaves_store_and_records_consistent(
    atlas, database_url, home, tmp_path
):
    entries = [
        CatalogEntry(
            title=f"Story number {i}",
            description=f"Chapter {i} of a long tale about {['ships', 'trains', 'birds'][i % 3]}"
            " crossing the world, told slowly " + "and carefully " * (i % 7),
            tags=[f"tag{i % 5}"],
        )
        for i in range(60)
    ]
    created, _ = store_entries(atlas.engine, entries)
    command = [
        sys.executable,
        "-m",
        "atlas",
        "--home",
        str(home),
        "--database-url",
        database_url,
        "embed-media",
        "--all",
        "--batch",
        "2",
        "--json",
    ]
    env = {**os.environ, "ATLAS_AUTO_PROCESS": "false", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    recorded = 0
    while time.monotonic() < deadline and process.poll() is None:
        recorded = len(_records(atlas.engine))
        if recorded >= 6:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    recorded = len(_records(atlas.engine))
    assert 0 < recorded < len(created), "the kill must land mid-run"

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    _assert_consistent(atlas, created)


def test_verify_restores_vectors_missing_from_the_store(atlas, embedded_library):
    lost = [embedded_library["Orbit of Silence"], embedded_library["Glass Alibi"]]
    get_store(atlas.settings).collection(MODEL, 384, create=False).delete(lost)

    quick = embed_media(atlas.dispatcher, all_media=True)
    assert quick.embedded == 0  # nothing changed in the library: the store is not opened
    report = embed_media(atlas.dispatcher, all_media=True, verify=True)
    assert report.repaired == 2 and report.embedded == 2
    _assert_consistent(atlas, embedded_library.values())


def test_vectors_of_deleted_media_are_removed(atlas, embedded_library):
    gone = embedded_library["Kitchen Chemistry"]
    with atlas.engine.begin() as connection:
        connection.execute(delete(media).where(media.c.id == gone))
    report = embed_media(atlas.dispatcher, all_media=True, verify=True)
    assert report.removed == 1
    _assert_consistent(atlas, set(embedded_library.values()) - {gone})


def test_verify_finds_a_missing_vector_even_when_an_orphan_balances_the_count(
    atlas, embedded_library
):
    lost, deleted = embedded_library["Sunday Dumplings"], embedded_library["The Vault Job"]
    get_store(atlas.settings).collection(MODEL, 384, create=False).delete([lost])
    with atlas.engine.begin() as connection:
        connection.execute(delete(media).where(media.c.id == deleted))
    report = embed_media(atlas.dispatcher, all_media=True, verify=True)
    assert report.repaired == 1 and report.removed == 1 and report.embedded == 1
    _assert_consistent(atlas, set(embedded_library.values()) - {deleted})


def test_an_item_that_lost_its_words_loses_its_vector(atlas, embedded_library):
    emptied = embedded_library["Red Planet Harvest"]
    with atlas.engine.begin() as connection:
        connection.execute(delete(media_tags).where(media_tags.c.media_id == emptied))
        connection.execute(
            update(media)
            .where(media.c.id == emptied)
            .values(title=None, description=None, genre=None)
        )
    report = embed_media(atlas.dispatcher, all_media=True)
    assert report.removed == 1 and report.empty == [emptied]
    _assert_consistent(atlas, set(embedded_library.values()) - {emptied})


def test_switching_models_keeps_their_vectors_apart(
    make_settings, themed_library, atlas, fake_embedding_server
):
    embed_media(atlas.dispatcher, all_media=True)
    ollama = open_atlas(
        make_settings(
            auto_process=False,
            **{"embedding.provider": "ollama", "embedding.ollama_host": fake_embedding_server.url},
        )
    )
    try:
        report = embed_media(ollama.dispatcher, all_media=True)
        assert report.model == "ollama:qwen3-embedding" and report.dimension == 8
        assert report.embedded == 12
        _assert_consistent(ollama, themed_library.values(), "ollama:qwen3-embedding", 8)
        _assert_consistent(atlas, themed_library.values(), MODEL, 384)
        store = get_store(atlas.settings)
        names = {c.name for c in store.collections_of(MODEL)} | {
            c.name for c in store.collections_of("ollama:qwen3-embedding")
        }
        assert len(names) == 2
    finally:
        ollama.close()


def test_unknown_media_id_is_not_found_and_nothing_is_written(atlas, themed_library):
    with pytest.raises(NotFound, match="no media with id 999"):
        embed_media(atlas.dispatcher, media_ids=[themed_library["Glass Alibi"], 999])
    assert _task_count(atlas.engine) == 0 and _records(atlas.engine) == {}


def test_media_with_nothing_to_embed_is_refused(atlas, themed_library):
    empty = themed_library["Glass Alibi"]
    with atlas.engine.begin() as connection:
        connection.execute(delete(media_tags).where(media_tags.c.media_id == empty))
        connection.execute(
            update(media)
            .where(media.c.id == empty)
            .values(title=None, description=None, genre=None)
        )
    with pytest.raises(InvalidInput, match=f"media {empty} has nothing to embed"):
        embed_media(atlas.dispatcher, media_ids=[empty])
    assert _task_count(atlas.engine) == 0


def test_bad_batch_size_and_missing_selection_are_refused(atlas):
    with pytest.raises(InvalidInput, match="`batch`"):
        embed_media(atlas.dispatcher, all_media=True, batch_size=0)
    with pytest.raises(InvalidInput, match="`media_ids`"):
        embed_media(atlas.dispatcher)
    with pytest.raises(InvalidInput, match="`verify` goes with `all`"):
        embed_media(atlas.dispatcher, media_ids=[1], verify=True)


def test_unreachable_ollama_fails_before_any_task_is_written(make_settings, themed_library):
    settings = make_settings(
        auto_process=False,
        **{
            "embedding.provider": "ollama",
            "embedding.ollama_host": f"http://127.0.0.1:{free_port()}",
        },
    )
    opened = open_atlas(settings)
    try:
        with pytest.raises(Unavailable, match="embedding.ollama_host"):
            embed_media(opened.dispatcher, all_media=True)
        assert _task_count(opened.engine) == 0
    finally:
        opened.close()


def test_unreachable_chroma_server_fails_before_any_task_is_written(
    make_settings, themed_library, embedding_model
):
    settings = make_settings(
        auto_process=False, **{"chroma.host": "127.0.0.1", "chroma.port": free_port()}
    )
    opened = open_atlas(settings)
    try:
        with pytest.raises(Unavailable, match="Chroma server at .* is not reachable"):
            embed_media(opened.dispatcher, all_media=True)
        assert _task_count(opened.engine) == 0
    finally:
        opened.close()


def test_embedding_into_a_chroma_server(
    make_settings, themed_library, chroma_server, embedding_model
):
    host, port = chroma_server
    settings = make_settings(
        auto_process=False,
        **{"chroma.host": host, "chroma.port": port, "chroma.collection": f"e{os.getpid()}"},
    )
    opened = open_atlas(settings)
    try:
        report = embed_media(opened.dispatcher, all_media=True)
        assert report.embedded == 12
        _assert_consistent(opened, themed_library.values())
    finally:
        opened.close()


def test_catalogue_import_leads_to_embeddings_when_auto_process_is_on(
    make_settings, tmp_path, embedding_model
):
    catalogue = tmp_path / "catalogue.jsonl"
    catalogue.write_text(
        "\n".join(
            json.dumps({key: item[key] for key in ("title", "description", "genres")})
            for item in THEMED_ITEMS[:3]
        ),
        encoding="utf-8",
    )
    opened = open_atlas(make_settings(auto_process=True))
    try:
        report = import_catalog(opened.dispatcher, catalogue)
        assert len(report.created) == 3
        assert set(_records(opened.engine)) == set(report.created)
        with opened.engine.connect() as connection:
            kinds = connection.execute(
                select(tasks.c.task_type, tasks.c.status).order_by(tasks.c.id)
            ).all()
        # The chain runs every installed stage in order; embedding comes last.
        assert kinds[0] == ("catalog-import", "completed")
        assert kinds[-1] == ("embed", "completed")
        assert all(status == "completed" for _kind, status in kinds)
    finally:
        opened.close()


def test_ingesting_a_file_leads_to_its_embedding_when_auto_process_is_on(
    make_settings, media_maker, tmp_path, embedding_model
):
    folder = tmp_path / "library"
    media_maker.copy(media_maker.video("clip.mp4", title="Harbour at Dawn"), folder / "harbour.mp4")
    opened = open_atlas(make_settings(auto_process=True))
    try:
        report = ingest_paths(opened.dispatcher, [folder])
        [media_id] = report.media_ids
        assert set(_records(opened.engine)) == {media_id}
        assert get_provider(opened.settings).model_id == MODEL
    finally:
        opened.close()


def test_ingest_without_auto_process_does_not_embed(make_settings, media_maker, tmp_path):
    folder = tmp_path / "library"
    media_maker.copy(media_maker.audio("talk.mp3"), folder / "talk.mp3")
    opened = open_atlas(make_settings(auto_process=False))
    try:
        ingest_paths(opened.dispatcher, [folder])
        assert _records(opened.engine) == {}
    finally:
        opened.close()


def test_a_failing_model_is_retried_then_stops_the_run_and_is_reported(
    make_settings, themed_library, embedding_model, monkeypatch
):
    def broken(texts):
        raise Unavailable("the model fell over")

    monkeypatch.setattr(embedding_model, "_embed", broken)
    settings = make_settings(
        auto_process=False, tasks={"embed": {"retries": 1, "retry_delay_s": 0}}
    )
    opened = open_atlas(settings)
    try:
        report = embed_media(opened.dispatcher, all_media=True, batch_size=4)
        assert report.failed == ["the model fell over"]
        assert report.batches == 1  # the remaining batches were not attempted
        assert _records(opened.engine) == {}
        with opened.engine.connect() as connection:
            log = connection.execute(select(task_logs.c.status, task_logs.c.retries)).one()
        assert tuple(log) == ("error", 1)
    finally:
        opened.close()


def test_embedding_through_a_queue_and_a_worker_process(
    make_settings, home, database_url, tmp_path, chroma_server
):
    # Several processes write vectors here, so they share a Chroma server.
    host, port = chroma_server
    queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    values = {
        "queue_url": queue_url,
        "queue_name": f"embed-{os.getpid()}",
        "auto_process": False,
        "chroma.host": host,
        "chroma.port": port,
        "chroma.collection": f"q{os.getpid()}",
    }
    atlas = open_atlas(make_settings(**values))
    entries = [CatalogEntry.model_validate(item) for item in THEMED_ITEMS[:6]]
    created, _ = store_entries(atlas.engine, entries)
    env = {
        **os.environ,
        "ATLAS_HOME": str(home),
        "ATLAS_DATABASE_URL": database_url,
        "ATLAS_QUEUE_URL": queue_url,
        "ATLAS_QUEUE_NAME": values["queue_name"],
        "ATLAS_AUTO_PROCESS": "false",
        "ATLAS_CHROMA__HOST": host,
        "ATLAS_CHROMA__PORT": str(port),
        "ATLAS_CHROMA__COLLECTION": values["chroma.collection"],
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "atlas", "worker", "--workers", "1", "--threads"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        report = embed_media(atlas.dispatcher, all_media=True, batch_size=4)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            output = worker.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            worker.kill()
            output = worker.communicate()[0].decode()
        atlas.dispatcher.queue.huey.flush()
    try:
        assert report.failed == [], output
        assert report.embedded == 6 and report.batches == 2
        with atlas.engine.connect() as connection:
            workers = connection.execute(select(task_logs.c.worker)).scalars().all()
        assert workers and all(not w.endswith(f":{os.getpid()}") for w in workers)
        _assert_consistent(atlas, created)
    finally:
        atlas.close()
