"""Corrections over HTTP write what the CLI writes; bad input is a 4xx and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _api import make_client
from _feedback import add_item, feedback_rows, snapshot, tags_of
from atlas.media import ingest_paths

_COMPARED = ("feedback_type", "original_value", "corrected_value", "confidence_score", "source")


@pytest.fixture
def client(atlas):
    with make_client(atlas) as opened:
        yield opened


def _rows(engine, media_id):
    return [{key: row[key] for key in _COMPARED} for row in feedback_rows(engine, media_id)]


def test_tag_correction_writes_the_same_feedback_rows_as_the_cli(atlas, client, cli):
    by_api = add_item(atlas.engine, "Alien", auto=["Sci-Fi", "Drama"], genre="Horror")
    by_cli = add_item(atlas.engine, "Alien", auto=["Sci-Fi", "Drama"], genre="Horror")

    response = client.post(
        f"/api/v1/media/{by_api}/feedback",
        json={"tags": ["Science Fiction", "Drama"], "genre": "Thriller", "rating": 4.5},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changes"][0]["replaced"] == [["Sci-Fi", "Science Fiction"]]
    assert {tag["tag"]: tag["source"] for tag in body["tags"]} == {
        "Science Fiction": "user",
        "Drama": "user",
    }
    result = cli(
        "track-tag-edits",
        "--media",
        str(by_cli),
        "--tags",
        "Science Fiction, Drama",
        "--genre",
        "Thriller",
        "--rating",
        "4.5",
    )
    assert result.exit_code == 0, result.output
    assert _rows(atlas.engine, by_api) == _rows(atlas.engine, by_cli)
    assert len(_rows(atlas.engine, by_api)) == 3
    assert tags_of(atlas.engine, by_api) == tags_of(atlas.engine, by_cli)


def test_edit_add_remove_and_move_record_feedback_as_their_commands(
    atlas, client, cli, media_maker, tmp_path: Path
):
    item = add_item(atlas.engine, "Heat", auto=["crime"])
    twin = add_item(atlas.engine, "Heat", auto=["crime"])
    assert client.patch(f"/api/v1/media/{item}", json={"title": "Heat (1995)", "year": 1995}).json()
    edited = cli("media", "edit", str(twin), "--title", "Heat (1995)", "--year", "1995")
    assert edited.exit_code == 0
    added = client.post(f"/api/v1/media/{item}/tags", json={"tags": ["heist", "LA"]})
    assert added.status_code == 200 and added.json()["edit"]["changes"][0]["added"] == [
        "heist",
        "LA",
    ]
    assert cli("media-tags", "add", str(twin), "heist", "LA").exit_code == 0
    removed = client.post(f"/api/v1/media/{item}/tags/remove", json={"tags": ["crime"]})
    assert removed.status_code == 200
    assert cli("media-tags", "remove", str(twin), "crime").exit_code == 0
    assert _rows(atlas.engine, item) == _rows(atlas.engine, twin)
    assert tags_of(atlas.engine, item) == {"heist": "user", "LA": "user"}

    listed = client.get("/api/v1/feedback", params={"media_id": item}).json()
    assert [row["feedback_type"] for row in listed] == [
        "tag_correction",
        "tag_correction",
        "metadata_edit",
        "metadata_edit",
    ]

    library = tmp_path / "library"
    (library / "kept").mkdir(parents=True)
    media_maker.copy(media_maker.audio(), library / "song.wav")
    (song,) = ingest_paths(atlas.dispatcher, [library]).media_ids
    moved = client.post(f"/api/v1/media/{song}/move", json={"destination": str(library / "kept")})
    assert moved.status_code == 200, moved.text
    assert (library / "kept" / "song.wav").is_file()
    assert [row["feedback_type"] for row in feedback_rows(atlas.engine, song)] == ["file_move"]


def _bad_requests(item: int, library: Path) -> list[tuple[str, str, dict]]:
    feedback = f"/api/v1/media/{item}/feedback"
    return [
        ("POST", feedback, {"content": b'{"tags": ["a",', "json_type": True}),
        ("POST", feedback, {"content": b"not json at all", "json_type": True}),
        ("POST", feedback, {"json": {"tags": 5}}),
        ("POST", feedback, {"json": {"rating": "high"}}),
        ("POST", feedback, {"json": {"rating": 4.2}}),
        ("POST", feedback, {"json": {"rating": 7}}),
        ("POST", feedback, {"content": b'{"rating": NaN}', "json_type": True}),
        ("POST", feedback, {"json": {"confidence": 2}}),
        ("POST", feedback, {"json": {"tags": ["x"] * 10_000}}),
        ("POST", feedback, {"json": {"tags": ",".join(f"t{n}" for n in range(3000))}}),
        ("POST", feedback, {"json": {"tags": ["ok", ""]}}),
        ("POST", feedback, {"json": {"tags": ["bad\x00tag"]}}),
        ("POST", feedback, {"json": {"tags": ["esc\x1b[31m"]}}),
        ("POST", feedback, {"json": {"genre": "Drama\x07bell"}}),
        ("POST", feedback, {"json": {"surprise": 1}}),
        ("POST", feedback, {"json": {}}),
        ("POST", feedback, {"json": [1, 2]}),
        ("POST", "/api/v1/media/999/feedback", {"json": {"tags": ["a"]}}),
        ("POST", "/api/v1/media/9223372036854775808/feedback", {"json": {"tags": ["a"]}}),
        ("POST", "/api/v1/media/18446744073709551616/tags", {"json": {"tags": ["a"]}}),
        ("PATCH", f"/api/v1/media/{item}", {"json": {"year": 99999999999999999999}}),
        ("PATCH", f"/api/v1/media/{item}", {"json": {"title": "x" * 5000}}),
        ("PATCH", f"/api/v1/media/{item}", {"json": {}}),
        ("POST", f"/api/v1/media/{item}/tags", {"json": {"tags": []}}),
        ("POST", f"/api/v1/media/{item}/tags", {"json": {"tags": ["a"], "kind": "mood"}}),
        ("POST", f"/api/v1/media/{item}/tags/remove", {"json": {"tags": ["never had it"]}}),
        ("POST", f"/api/v1/media/{item}/move", {"json": {"destination": "../../../etc"}}),
        ("POST", f"/api/v1/media/{item}/move", {"json": {"destination": "/etc/passwd"}}),
        ("POST", f"/api/v1/media/{item}/move", {"json": {"destination": "a\x00b"}}),
        ("POST", "/api/v1/rules/999/enable", {}),
        ("POST", "/api/v1/rules/9223372036854775808/disable", {}),
        ("POST", "/api/v1/rules/applications/999/undo", {}),
        ("POST", "/api/v1/tasks/999/cancel", {}),
        ("POST", "/api/v1/tasks", {"json": {"task_type": "delete-everything"}}),
        ("POST", "/api/v1/tasks", {"json": {"task_type": "embed"}}),
        ("POST", "/api/v1/tasks", {"json": {"task_type": "embed", "media_ids": [2**63]}}),
        ("POST", "/api/v1/tasks", {"json": {"task_type": "ingest", "path": str(library)}}),
        ("POST", "/api/v1/feedback-loop", {"json": {"min_frequency": 0}}),
        ("POST", "/api/v1/feedback-loop", {"json": {"analyze_only": True, "apply_rules": True}}),
        ("GET", "/api/v1/search?q=", {}),
        ("GET", "/api/v1/search?q=space&mode=psychic", {}),
        ("GET", "/api/v1/search?q=space&top=0", {}),
        ("GET", "/api/v1/search?q=space&threshold=nan", {}),
        ("GET", "/api/v1/tasks?status=exploded", {}),
        ("GET", "/api/v1/tasks/99999999999999999999", {}),
        ("GET", "/api/v1/analytics/summary?hours=-1", {}),
        ("GET", "/api/v1/analytics/trends?type=no-such-task", {}),
    ]


def test_bad_input_is_a_clear_4xx_and_writes_nothing(atlas, client, tmp_path: Path):
    item = add_item(atlas.engine, "Alien", auto=["Space"], genre="Horror")
    library = tmp_path / "library"
    library.mkdir()
    before = snapshot(atlas.engine)
    for method, url, options in _bad_requests(item, library):
        headers = {"content-type": "application/json"} if options.pop("json_type", False) else {}
        response = client.request(method, url, headers=headers, **options)
        assert 400 <= response.status_code < 500, (method, url, options, response.status_code)
        body = response.json()
        assert set(body) == {"error", "status"} and body["status"] == response.status_code
        assert body["error"] and "\n" not in body["error"], (url, body)
        assert "Traceback" not in body["error"]
    assert snapshot(atlas.engine) == before


def test_service_messages_name_the_api_fields_not_cli_flags(atlas, client):
    item = add_item(atlas.engine, "Alien")
    response = client.post(f"/api/v1/media/{item}/feedback", json={"genre": "a\x1bb"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("genre ")
    assert "--" not in response.json()["error"]
    empty = client.post(f"/api/v1/media/{item}/feedback", json={})
    assert empty.status_code == 422
    assert empty.json()["error"] == "nothing to record: give tags, genre and/or rating"
    unchanged = client.patch(f"/api/v1/media/{item}", json={})
    assert unchanged.status_code == 422
    assert unchanged.json()["error"] == (
        "nothing to change: give at least one of title, genre, description, artist, year"
    )
    # The repair is named in the domain's words.
    unembedded = client.get(f"/api/v1/media/{item}/similar")
    assert unembedded.status_code == 404
    assert unembedded.json()["error"] == (
        f"media {item} is not embedded yet; embed what is not embedded yet"
    )


@pytest.mark.parametrize("size", [1_000_001, 5_000_000])
def test_oversized_bodies_are_refused_before_any_route(atlas, size):
    item = add_item(atlas.engine, "Alien")
    with make_client(atlas) as fresh:
        before = snapshot(atlas.engine)
        body = json.dumps({"genre": "x" * size}).encode()
        response = fresh.post(
            f"/api/v1/media/{item}/feedback",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["error"] == "the request body is larger than 1,000,000 bytes"

        def chunks():  # no Content-Length: counted as it arrives
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        streamed = fresh.post(
            f"/api/v1/media/{item}/feedback",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert snapshot(atlas.engine) == before
