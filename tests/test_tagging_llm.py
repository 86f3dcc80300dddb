"""The optional LLM tagger, against a small HTTP server speaking Ollama's ``/api/chat``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from atlas.app import open_atlas
from atlas.media.catalog import CatalogEntry, store_entries
from atlas.tagging import list_media_tags, retag_media
from conftest import JsonServer, free_port

pytestmark = pytest.mark.slow


class FakeOllama(JsonServer):
    """``POST /api/chat`` (non-streaming) answering with ``content`` set by the test."""

    def __init__(self) -> None:
        self.content = json.dumps(
            {"tags": [{"tag": "science fiction", "confidence": 0.9}, {"tag": "Zero Gravity"}]}
        )
        self.status = 200
        super().__init__()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path != "/api/chat":
            return 404, {"error": "not found"}
        if self.status != 200:
            return self.status, {"error": f"model '{body['model']}' not found"}
        return 200, {
            "model": body["model"],
            "created_at": "2026-11-28T10:00:00Z",
            "message": {"role": "assistant", "content": self.content},
            "done": True,
            "done_reason": "stop",
        }


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    server = FakeOllama()
    yield server
    server.close()


def _open(make_settings, host: str) -> Any:
    return open_atlas(
        make_settings(
            auto_process=False,
            **{
                "tagging.ollama_model": "llama3.2",
                "tagging.ollama_host": host,
                "tagging.keyphrases": 0,
            },
        )
    )


def _item(atlas) -> int:
    entry = CatalogEntry.model_validate(
        {"title": "Orbit of Silence", "description": "An astronaut alone on a space station."}
    )
    (media_id,), _ = store_entries(atlas.engine, [entry])
    return media_id


def test_the_llm_suggests_vocabulary_and_free_tags_that_are_stored_and_explained(
    make_settings, ollama, embedding_model
):
    atlas = _open(make_settings, ollama.url)
    try:
        media_id = _item(atlas)
        report = retag_media(atlas.dispatcher, targets=[str(media_id)])
        assert report.summary() == {"tagged": 1}
        tags = {t.tag: t for t in list_media_tags(atlas.engine, str(media_id)).tags}
    finally:
        atlas.close()
    scifi = tags["Science Fiction"]  # the vocabulary's spelling and kind
    assert scifi.kind == "genre" and "LLM llama3.2 suggested it (0.90)" in scifi.explanation
    free = tags["Zero Gravity"]
    assert free.kind == "topic" and free.explanation == "LLM llama3.2 suggested it (0.80)"
    (path, body, _headers), *_ = ollama.requests
    assert path == "/api/chat"
    assert body["model"] == "llama3.2" and body["stream"] is False and body["format"] == "json"
    assert body["options"] == {"temperature": 0}
    system, user = body["messages"]
    assert system["role"] == "system" and '{"tags": [{"tag": "<name>"' in system["content"]
    assert user["role"] == "user" and "- Science Fiction (genre): space, aliens" in user["content"]
    assert user["content"].endswith("Orbit of Silence\nAn astronaut alone on a space station.")


def test_an_answer_that_is_not_the_json_asked_for_gives_no_evidence(
    make_settings, ollama, embedding_model
):
    ollama.content = "I think this is science fiction."
    atlas = _open(make_settings, ollama.url)
    try:
        report = retag_media(atlas.dispatcher, targets=[str(_item(atlas))])
    finally:
        atlas.close()
    (item,) = report.items
    assert item.status == "tagged"
    assert "the LLM's answer was not usable (not JSON)" in item.notes
    assert not any("LLM" in (tag.explanation or "") for tag in item.tags)


def test_an_ollama_that_refuses_or_does_not_answer_fails_the_task_with_one_reason(
    make_settings, ollama, embedding_model
):
    ollama.status = 404
    atlas = _open(make_settings, ollama.url)
    try:
        report = retag_media(atlas.dispatcher, targets=[str(_item(atlas))])
    finally:
        atlas.close()
    assert report.summary() == {"error": 1}
    assert report.failed_tasks == [
        f"Ollama at {ollama.url} (model 'llama3.2') refused the request (HTTP 404: model "
        "'llama3.2' not found); check tagging.ollama_model"
    ]

    port = free_port()
    atlas = _open(make_settings, f"http://127.0.0.1:{port}")
    try:
        report = retag_media(atlas.dispatcher, all_media=True, force=True)
    finally:
        atlas.close()
    (reason,) = report.failed_tasks
    assert reason.startswith(
        f"Ollama at http://127.0.0.1:{port} (model 'llama3.2') is not reachable"
    )
    assert reason.endswith("; start it, set tagging.ollama_host, or unset tagging.ollama_model")
