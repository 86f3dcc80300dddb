"""The media endpoints of ``atlas serve``: lists with filters, one item, transcript, tags, files."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, update

from _api import make_client
from _feedback import add_item
from atlas.db import utcnow
from atlas.db.tables import media, transcripts
from atlas.media import ingest_paths


@pytest.fixture
def client(atlas):
    with make_client(atlas) as opened:
        yield opened


def test_media_list_filters_sorts_and_pages(atlas, client):
    alien = add_item(atlas.engine, "Alien", auto=["Space"], genre="Horror")
    heat = add_item(atlas.engine, "Heat", auto=["heist"], genre="Crime", media_type="audio")
    add_item(atlas.engine, "Aliens", user=["Space", "Marines"], genre="Action")
    with atlas.engine.begin() as connection:
        connection.execute(update(media).where(media.c.id == heat).values(year=1995))
        connection.execute(update(media).where(media.c.id == alien).values(year=1979))

    everything = client.get("/api/v1/media").json()
    assert everything["total"] == 3
    assert [item["title"] for item in everything["items"]] == ["Alien", "Heat", "Aliens"]

    spacey = client.get("/api/v1/media", params={"tag": " SPACE "}).json()
    assert sorted(item["title"] for item in spacey["items"]) == ["Alien", "Aliens"]
    assert client.get("/api/v1/media", params={"genre": "crime"}).json()["items"][0]["id"] == heat
    assert client.get("/api/v1/media", params={"type": "audio"}).json()["total"] == 1
    assert client.get("/api/v1/media", params={"title": "alien"}).json()["total"] == 2

    by_year = client.get("/api/v1/media", params={"sort": "year", "descending": True}).json()
    assert [item["title"] for item in by_year["items"]][:2] == ["Heat", "Alien"]
    second = client.get("/api/v1/media", params={"limit": 1, "offset": 1}).json()
    assert second["total"] == 3 and [item["title"] for item in second["items"]] == ["Heat"]


def test_media_show_tags_with_source_confidence_and_why(atlas, client):
    item = add_item(atlas.engine, "Alien", auto=["Space"], user=["Horror"])
    shown = client.get(f"/api/v1/media/{item}").json()
    assert shown["title"] == "Alien" and {t["tag"] for t in shown["tags"]} == {"Space", "Horror"}
    tags = client.get(f"/api/v1/media/{item}/tags").json()["tags"]
    assert tags[0] == {
        "tag": "Horror",
        "kind": "topic",
        "source": "user",
        "confidence": 1.0,
        "explanation": None,
        "norm": "horror",
    }
    assert tags[1]["source"] == "auto" and tags[1]["explanation"] == "predicted"


def test_transcript_comes_with_timed_segments(atlas, client):
    item = add_item(atlas.engine, "Talk")
    assert client.get(f"/api/v1/media/{item}/transcript").status_code == 404
    with atlas.engine.begin() as connection:
        connection.execute(
            insert(transcripts).values(
                media_id=item,
                text="Hello there. General Kenobi.",
                segments=[
                    {"start": 0.0, "end": 1.5, "text": " Hello there."},
                    {"start": 1.5, "end": 3.25, "text": " General Kenobi."},
                ],
                source="whisper",
                language="en",
                created_at=utcnow(),
            )
        )
    body = client.get(f"/api/v1/media/{item}/transcript").json()
    assert body["segments"] == [
        {"start": 0.0, "end": 1.5, "text": "Hello there."},
        {"start": 1.5, "end": 3.25, "text": "General Kenobi."},
    ]


def test_unknown_and_impossible_ids_are_clear_json_errors(client):
    for url in ("/api/v1/media/999", "/api/v1/media/999/tags", "/api/v1/media/999/similar"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"].startswith("no media with id 999")
    for bad in ("9223372036854775808", "99999999999999999999999", "0", "-1", "abc", "1.5"):
        response = client.get(f"/api/v1/media/{bad}")
        assert response.status_code == 422, bad
        assert response.json()["error"].startswith("path.media_id:")
    assert client.get("/api/v1/media", params={"limit": 100_000}).status_code == 422
    assert client.get("/api/v1/media", params={"sort": "path"}).status_code == 422
    response = client.get("/api/v1/media", params={"genre": "a\x00b"})
    assert response.status_code == 422 and "control character" in response.json()["error"]


def test_media_file_is_served_with_range_requests_only_inside_the_library(
    atlas, client, media_maker, tmp_path: Path
):
    library = tmp_path / "library"
    library.mkdir()
    song = media_maker.copy(media_maker.audio(), library / "song.wav")
    report = ingest_paths(atlas.dispatcher, [library])
    (media_id,) = report.media_ids
    whole = song.read_bytes()

    full = client.get(f"/api/v1/media/{media_id}/file")
    assert full.status_code == 200 and full.content == whole
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(f"/api/v1/media/{media_id}/file", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206
    assert part.content == whole[10:100]
    assert part.headers["content-range"] == f"bytes 10-99/{len(whole)}"

    # A recorded path that leads out of the library (a link to a file elsewhere).
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the web")
    link = library / "link.wav"
    link.symlink_to(outside)
    with atlas.engine.begin() as connection:
        connection.execute(update(media).where(media.c.id == media_id).values(path=str(link)))
    refused = client.get(f"/api/v1/media/{media_id}/file")
    assert refused.status_code == 422
    assert "outside the library folders" in refused.json()["error"]
    assert "not for the web" not in refused.text

    # Traversal in the request itself reaches no file.
    for url in (
        "/api/v1/media/..%2F..%2Fsecret.txt/file",
        "/api/v1/media/1/../../secret.txt",
        f"/api/v1/media/{media_id}/file/..%2F..%2Fsecret.txt",
    ):
        response = client.get(url)
        assert 400 <= response.status_code < 500, url
        assert "not for the web" not in response.text


def test_catalogue_record_has_no_file(atlas, client):
    item = add_item(atlas.engine, "Only a record")
    response = client.get(f"/api/v1/media/{item}/file")
    assert response.status_code == 404
    assert response.json()["error"] == f"media {item} is a catalogue record without a file"


def test_openapi_document_describes_the_api(client):
    document = client.get("/api/v1/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/api/v1/media",
        "/api/v1/media/{media_id}",
        "/api/v1/media/{media_id}/transcript",
        "/api/v1/media/{media_id}/tags",
        "/api/v1/media/{media_id}/similar",
        "/api/v1/media/{media_id}/feedback",
        "/api/v1/search",
        "/api/v1/rules",
        "/api/v1/rules/{rule_id}/disable",
        "/api/v1/rules/applications/{application_id}/undo",
        "/api/v1/feedback-loop",
        "/api/v1/analytics/summary",
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}/events",
    ):
        assert path in paths, path
    assert "/" not in paths and "/media/{media_id}" not in paths  # pages are not API
    schema = document["components"]["schemas"]["CorrectRequest"]
    assert schema["additionalProperties"] is False
