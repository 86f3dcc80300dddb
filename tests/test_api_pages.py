"""The web pages of ``atlas serve``: library, media, rules, feedback, analytics, tasks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import insert

from _api import make_client, page_client
from _feedback import add_item
from atlas.db import utcnow
from atlas.db.tables import transcripts
from atlas.media import ingest_paths


@pytest.fixture
def client(atlas):
    with make_client(atlas) as opened:
        yield opened


def test_library_page_lists_filters_pages_and_searches(atlas, client):
    for n in range(30):
        add_item(atlas.engine, f"Film {n:02d}", auto=["space" if n % 2 else "crime"])
    page = client.get("/")
    assert page.status_code == 200
    assert 'Library <span class="muted">(30 items)</span>' in page.text
    assert "page 1 of 2" in page.text and 'rel="next" href="?page=2"' in page.text
    second = client.get("/", params={"page": 2, "view": "list"})
    assert "Film 29" in second.text and "Film 00" not in second.text
    assert 'class="items list"' in second.text

    spacey = client.get("/", params={"tag": "space"})
    assert "(15 items)" in spacey.text and "Film 01" in spacey.text
    assert ">Film 02<" not in spacey.text

    found = client.get("/", params={"q": "Film 07", "mode": "lexical"})
    assert found.status_code == 200 and "lexical search: Film 07" in found.text
    assert 'href="/media/8"' in found.text


def test_media_page_plays_seeks_explains_and_edits(atlas, client, media_maker, tmp_path: Path):
    library = tmp_path / "library"
    library.mkdir()
    media_maker.copy(media_maker.audio(), library / "song.wav")
    (item,) = ingest_paths(atlas.dispatcher, [library]).media_ids
    with atlas.engine.begin() as connection:
        connection.execute(
            insert(transcripts).values(
                media_id=item,
                text="One. Two.",
                segments=[
                    {"start": 0.0, "end": 61.0, "text": "One."},
                    {"start": 61.0, "end": 62.0, "text": "Two."},
                ],
                source="whisper",
                created_at=utcnow(),
            )
        )
    csrf = page_client(client)
    client.post(
        f"/api/v1/media/{item}/tags",
        json={"tags": ["Ambient"]},
        headers={"X-CSRF-Token": csrf},
    ).raise_for_status()
    page = client.get(f"/media/{item}")
    assert page.status_code == 200
    assert f'<audio id="player" controls preload="metadata" src="/api/v1/media/{item}/file">' in (
        page.text
    )
    assert '<button type="button" class="seek" data-start="61.0">1:01</button> Two.' in page.text
    assert re.search(r'class="tag src-user">Ambient</span>\s*<span class="muted">user', page.text)
    assert f'data-api="/api/v1/media/{item}/feedback"' in page.text
    assert "tag_correction" in page.text  # the item's corrections are listed
    assert f"media {item} is not embedded yet" in page.text  # no similar items yet, and why


def test_every_page_renders(atlas, client):
    item = add_item(atlas.engine, "Alien", auto=["Space"])
    for url in ("/rules", "/feedback", "/analytics", "/tasks", f"/media/{item}"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith("text/html")
    assert 'data-live="/api/v1/tasks/events"' in client.get("/tasks").text
    assert "<svg" in client.get("/analytics").text
    assert client.get("/static/app.js").status_code == 200


def test_pages_say_what_went_wrong(client):
    missing = client.get("/media/999")
    assert missing.status_code == 404 and "no media with id 999" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    huge = client.get("/media/9223372036854775808")
    assert huge.status_code == 422 and "media_id" in huge.text
    assert client.get("/?page=0").status_code == 422
