"""LLM planning against a small HTTP server speaking Ollama's ``/api/chat`` and the
OpenAI-compatible ``/v1/chat/completions``: valid steps stored, hostile ones refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from atlas.app import open_atlas
from atlas.autolearn import apply_recommendation, list_recommendations, plan_with_llm
from atlas.db import utcnow
from atlas.db.tables import media
from atlas.errors import InvalidInput, Unavailable
from conftest import JsonServer


class FakeChat(JsonServer):
    """Answers both wire formats with ``content`` set by the test."""

    def __init__(self) -> None:
        self.content = "{}"
        super().__init__()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == "/api/chat":
            return 200, {
                "model": body["model"],
                "created_at": "2026-12-05T10:00:00Z",
                "message": {"role": "assistant", "content": self.content},
                "done": True,
            }
        if path == "/v1/chat/completions":
            return 200, {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.content},
                        "finish_reason": "stop",
                    }
                ],
            }
        return 404, {"error": "not found"}


@pytest.fixture
def server() -> Iterator[FakeChat]:
    fake = FakeChat()
    yield fake
    fake.close()


def _items(atlas, count: int = 3) -> list[int]:
    ids = []
    with atlas.engine.begin() as connection:
        for index in range(count):
            ids.append(
                connection.execute(
                    insert(media)
                    .values(
                        origin="catalog",
                        media_type="video",
                        title=f"Film {index}",
                        description="A quiet film about the sea",
                        created_at=utcnow() - timedelta(hours=3),
                        updated_at=utcnow(),
                    )
                    .returning(media.c.id)
                ).scalar_one()
            )
    return ids


@pytest.mark.parametrize("flavour", ["ollama", "openai"])
def test_a_plan_is_validated_and_stored_as_recommendations(make_settings, server, flavour):
    overrides = (
        {"autolearn.ollama_model": "qwen3:8b", "autolearn.ollama_host": server.url}
        if flavour == "ollama"
        else {
            "autolearn.openai_model": "gpt-x",
            "autolearn.openai_base_url": f"{server.url}/v1",
            "autolearn.openai_api_key": "k",
        }
    )
    atlas = open_atlas(make_settings(auto_process=False, **overrides))
    try:
        ids = _items(atlas)
        server.content = json.dumps(
            {
                "plan": [
                    {
                        "insight": "coverage:not-embedded",
                        "action": "embed",
                        "params": {"media_ids": ids[:2]},
                        "why": "search needs vectors",
                    },
                    {"insight": "coverage:not-embedded", "action": "delete-everything"},
                    {"insight": "coverage:nope", "action": "embed"},
                    {
                        "insight": "coverage:not-embedded",
                        "action": "embed",
                        "params": {"media_ids": [999]},
                    },
                    {
                        "insight": "coverage:not-embedded",
                        "action": "embed",
                        "params": {"media_ids": ids, "path": "/etc/passwd"},
                    },
                ],
                "metadata": [
                    {"media_id": ids[0], "field": "genre", "value": "Drama", "why": "sea"},
                    {"media_id": ids[1], "field": "year", "value": 99999},
                    {"media_id": ids[2], "field": "description", "value": "x"},
                ],
            }
        )
        report = plan_with_llm(atlas.settings, atlas.engine, media_ids=ids[:2])
        path, body, headers = server.requests[-1]
        assert path == ("/api/chat" if flavour == "ollama" else "/v1/chat/completions")
        sent = json.loads(body["messages"][1]["content"])
        assert {i["key"] for i in sent["insights"]} >= {"coverage:not-embedded"}
        assert [item["media_id"] for item in sent["items"]] == ids[:2]
        if flavour == "openai":
            assert headers["Authorization"] == "Bearer k"
        reasons = dict(report.rejected)
        assert len(report.stored) == 2 and len(report.rejected) == 6
        assert "unknown action 'delete-everything'" in reasons["plan step 2"]
        assert "names no current insight ('coverage:nope')" in reasons["plan step 3"]
        assert "media 999 is not among the items" in reasons["plan step 4"]
        assert "takes no parameter 'path'" in reasons["plan step 5"]
        assert "1800 to 2200" in reasons["metadata suggestion 2"]
        assert "was not sent to the model" in reasons["metadata suggestion 3"]

        stored = {r.id: r for r in list_recommendations(atlas.engine) if r.origin == "llm"}
        fill = next(r for r in stored.values() if r.kind == "fill-metadata")
        assert fill.rank == 2 and fill.plan == f"set the empty genre of media {ids[0]} to 'Drama'"
        apply_recommendation(atlas.dispatcher, fill.id)
        with atlas.engine.connect() as connection:
            genre = connection.scalar(select(media.c.genre).where(media.c.id == ids[0]))
        assert genre == "Drama"
    finally:
        atlas.close()


def test_an_answer_that_is_not_json_stores_nothing(make_settings, server, cli):
    atlas = open_atlas(
        make_settings(
            auto_process=False,
            **{"autolearn.ollama_model": "m", "autolearn.ollama_host": server.url},
        )
    )
    try:
        _items(atlas)
        server.content = "Sure! Here is my plan: embed everything."
        with pytest.raises(InvalidInput, match="not JSON"):
            plan_with_llm(atlas.settings, atlas.engine)
        server.content = json.dumps(["embed"])
        with pytest.raises(InvalidInput, match="not a JSON object"):
            plan_with_llm(atlas.settings, atlas.engine)
        assert [r for r in list_recommendations(atlas.engine) if r.origin == "llm"] == []
    finally:
        atlas.close()
    env = {"ATLAS_AUTOLEARN__OLLAMA_MODEL": "m", "ATLAS_AUTOLEARN__OLLAMA_HOST": server.url}
    result = cli("autolearn", "plan", env=env)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "atlas: the model's answer is not a JSON object; nothing was stored"
    )


def test_without_a_model_plan_says_what_to_configure(atlas, cli):
    with pytest.raises(Unavailable, match="autolearn.ollama_model"):
        plan_with_llm(atlas.settings, atlas.engine)
    result = cli("autolearn", "plan")
    assert result.exit_code == 5 and "no planning model is configured" in result.stderr
    assert cli("autolearn", "insights").exit_code == 0


def test_a_host_that_does_not_answer_fails_in_one_line(make_settings):
    from conftest import free_port

    atlas = open_atlas(
        make_settings(
            auto_process=False,
            **{
                "autolearn.ollama_model": "m",
                "autolearn.ollama_host": f"http://127.0.0.1:{free_port()}",
                "autolearn.request_timeout_s": 2,
            },
        )
    )
    try:
        with pytest.raises(Unavailable, match="is not reachable"):
            plan_with_llm(atlas.settings, atlas.engine)
    finally:
        atlas.close()
