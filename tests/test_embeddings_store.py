"""The vector store contract, run against the embedded store and a real Chroma server."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from atlas.app import open_atlas
from atlas.db.tables import task_logs
from atlas.embeddings.store import collection_name, get_store
from atlas.errors import Unavailable
from atlas.media.catalog import CatalogEntry, store_entries
from conftest import free_port, raised_by, running_chroma_server


@pytest.fixture(params=["embedded", "server"])
def store_settings(request, make_settings):
    if request.param == "embedded":
        return make_settings()
    host, port = request.getfixturevalue("chroma_server")
    # Each test gets its own collection prefix on the shared server.
    prefix = f"t{request.node.nodeid.__hash__() & 0xFFFFFF:06x}"
    return make_settings(**{"chroma.host": host, "chroma.port": port, "chroma.collection": prefix})


def _unit(rows):
    matrix = np.asarray(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_writing_a_vector_twice_keeps_one_per_media_item(store_settings):
    collection = get_store(store_settings).collection("test:model", 3)
    vectors = _unit([[1, 0, 0], [0, 1, 0]])
    meta = [{"media_type": "video"}, {"media_type": "audio"}]
    collection.upsert([1, 2], vectors, meta)
    collection.upsert([1, 2], _unit([[0, 0, 1], [0, 1, 0]]), meta)
    assert collection.count() == 2
    assert collection.ids() == {1, 2}
    assert np.allclose(collection.vectors([1])[1], [0, 0, 1])
    assert collection.present([1, 2, 3]) == {1, 2}


def test_query_returns_nearest_first_with_cosine_similarity(store_settings):
    collection = get_store(store_settings).collection("test:model", 3)
    collection.upsert(
        [1, 2, 3],
        _unit([[1, 0, 0], [1, 1, 0], [0, 0, 1]]),
        [{"media_type": "video"}] * 3,
    )
    found = collection.query(_unit([[1, 0, 0]])[0], 3)
    assert [n.media_id for n in found] == [1, 2, 3]
    assert found[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert found[1].similarity == pytest.approx(np.sqrt(0.5), abs=1e-4)
    assert found[2].similarity == pytest.approx(0.0, abs=1e-4)


def test_metadata_filters_by_media_type_and_genre(store_settings):
    collection = get_store(store_settings).collection("test:model", 3)
    collection.upsert(
        [1, 2, 3],
        _unit([[1, 0, 0], [1, 0.1, 0], [1, 0.2, 0]]),
        [
            {"media_type": "video", "genres": ["drama", "science fiction"]},
            {"media_type": "audio", "genres": ["science fiction"]},
            {"media_type": "video", "genres": []},
        ],
    )
    query = _unit([[1, 0, 0]])[0]
    assert [n.media_id for n in collection.query(query, 5, media_type="video")] == [1, 3]
    assert [n.media_id for n in collection.query(query, 5, genre="science fiction")] == [1, 2]
    both = collection.query(query, 5, media_type="audio", genre="science fiction")
    assert [n.media_id for n in both] == [2]
    assert collection.metadata([1])[1]["model"] == "test:model"
    assert collection.metadata([1])[1]["dimension"] == 3


def test_each_model_and_dimension_has_its_own_collection(store_settings):
    store = get_store(store_settings)
    small = store.collection("ollama:tiny", 2)
    large = store.collection("ollama:tiny", 3)
    other = store.collection("openai:other", 2)
    assert len({small.name, large.name, other.name}) == 3
    small.upsert([1], _unit([[1, 0]]), [{}])
    other.upsert([1, 2], _unit([[0, 1], [1, 1]]), [{}, {}])
    assert small.count() == 1 and large.count() == 0 and other.count() == 2
    assert {c.name for c in store.collections_of("openai:other")} == {other.name}
    assert store.collection("never:used", 4, create=False) is None


def test_deleted_vectors_are_gone(store_settings):
    collection = get_store(store_settings).collection("test:model", 2)
    collection.upsert([1, 2, 3], _unit([[1, 0], [0, 1], [1, 1]]), [{}] * 3)
    collection.delete([2, 99])
    assert collection.ids() == {1, 3}
    ids, matrix = collection.all_vectors()
    assert ids == [1, 3] and matrix.shape == (2, 2)


def test_collection_names_are_valid_chroma_names_and_stable():
    name = collection_name("atlas_media", "sentence-transformers:/models/My Model v2!", 768)
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]", name)
    assert name == collection_name("atlas_media", "sentence-transformers:/models/My Model v2!", 768)
    assert name != collection_name("atlas_media", "sentence-transformers:/models/My Model v3!", 768)
    assert name != collection_name("atlas_media", "sentence-transformers:/models/My Model v2!", 384)


def test_unreachable_chroma_server_is_one_clear_line(make_settings):
    port = free_port()
    store = get_store(make_settings(**{"chroma.host": "127.0.0.1", "chroma.port": port}))
    with pytest.raises(Unavailable) as caught:
        store.check()
    message = str(caught.value)
    assert message.startswith(f"the Chroma server at http://127.0.0.1:{port} is not reachable")
    assert "chroma.host" in message and "\n" not in message


# --- a hung Chroma server --------------------------------------------------------------


@pytest.fixture(scope="module")
def own_chroma_server(tmp_path_factory):
    """A Chroma server of this module's own, which its tests stop and resume."""
    with running_chroma_server(tmp_path_factory.mktemp("own-chroma")) as (process, port):
        yield process, port


@contextlib.contextmanager
def stopped(process):
    """The server process frozen (SIGSTOP): it accepts connections, answers nothing."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        _wait_until_stopped(process.pid)
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def _wait_until_stopped(pid):
    # The signal takes effect asynchronously: a thread running on another core can
    # still answer a request or two; wait until every thread is stopped.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = []
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            with contextlib.suppress(OSError):
                states.append(stat.read_text().rpartition(")")[2].split()[0])
        if states and all(state in ("T", "t") for state in states):
            return
        time.sleep(0.01)
    pytest.fail(f"process {pid} did not stop")


def _hung_server_message(port):
    return (
        f"the Chroma server at http://127.0.0.1:{port} did not answer within 1 s; "
        "check that it is running and not overloaded, or raise chroma.timeout_s"
    )


def test_every_request_to_a_hung_chroma_server_fails_within_the_timeout(
    own_chroma_server, make_settings
):
    process, port = own_chroma_server
    settings = make_settings(
        **{"chroma.host": "127.0.0.1", "chroma.port": port, "chroma.timeout_s": 1}
    )
    store = get_store(settings)
    collection = store.collection("test:model", 3)
    collection.upsert([1, 2], _unit([[1, 0, 0], [0, 1, 0]]), [{"media_type": "video"}] * 2)
    query = _unit([[1, 0, 0]])[0]
    calls = {
        "heartbeat": store.check,
        "create collection": lambda: store.collection("test:other", 3),
        "get collection": lambda: store.collection("test:absent", 3, create=False),
        "list collections": lambda: store.collections_of("test:model"),
        "upsert": lambda: collection.upsert([3], _unit([[0, 0, 1]]), [{}]),
        "query": lambda: collection.query(query, 2),
        "get": lambda: collection.vectors([1]),
        "delete": lambda: collection.delete([1]),
        "count": collection.count,
    }
    with stopped(process):
        failures = {name: raised_by(call) for name, call in calls.items()}
    for name, raised in failures.items():
        assert isinstance(raised, Unavailable), f"{name}: {raised!r}"
        assert str(raised) == _hung_server_message(port), name
    # The server answers again once it runs again: the failure was transient.
    store.check()
    assert collection.count() == 2


def test_connecting_to_a_hung_chroma_server_fails_within_the_timeout(
    own_chroma_server, make_settings
):
    process, port = own_chroma_server
    settings = make_settings(
        **{"chroma.host": "127.0.0.1", "chroma.port": port, "chroma.timeout_s": 1}
    )
    with stopped(process):
        raised = raised_by(get_store(settings).check)
    assert isinstance(raised, Unavailable)
    assert str(raised) == _hung_server_message(port)


def test_a_server_that_accepts_and_never_answers_fails_within_the_timeout(
    silent_server, make_settings
):
    host, port = silent_server
    settings = make_settings(**{"chroma.host": host, "chroma.port": port, "chroma.timeout_s": 1})
    raised = raised_by(get_store(settings).check)
    assert isinstance(raised, Unavailable)
    assert str(raised) == _hung_server_message(port)


@pytest.mark.slow
def test_an_embed_task_meeting_a_hung_chroma_server_fails_with_the_reason_and_is_retried(
    own_chroma_server, make_settings, embedding_model
):
    process, port = own_chroma_server
    settings = make_settings(
        auto_process=False,
        **{
            "chroma.host": "127.0.0.1",
            "chroma.port": port,
            "chroma.timeout_s": 1,
            "tasks.embed.retries": 1,
            "tasks.embed.retry_delay_s": 0,
        },
    )
    opened = open_atlas(settings)
    try:
        entry = CatalogEntry.model_validate({"title": "Orbit", "description": "In orbit."})
        (media_id,), _ = store_entries(opened.engine, [entry])
        outcomes = []
        with stopped(process):
            raised = raised_by(
                lambda: outcomes.append(
                    opened.dispatcher.submit("embed", {"media_ids": [media_id], "chain": False})
                )
            )
        assert raised is None
        (outcome,) = outcomes
        assert (outcome.status, outcome.error, outcome.retries) == (
            "error",
            _hung_server_message(port),
            1,
        )
        with opened.engine.connect() as connection:
            runs = connection.execute(
                select(task_logs.c.status, task_logs.c.error_reason).where(
                    task_logs.c.task_id == outcome.task_id
                )
            ).all()
        assert runs and all(tuple(run) == ("error", _hung_server_message(port)) for run in runs)
    finally:
        opened.close()
