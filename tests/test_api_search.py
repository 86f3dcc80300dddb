"""Search over HTTP with the real embedding model and the real vector store (Chroma)."""

from __future__ import annotations

import pytest

from _api import make_client

pytestmark = pytest.mark.slow


@pytest.fixture
def client(atlas):
    with make_client(atlas) as opened:
        yield opened


@pytest.mark.parametrize("mode", ["vector", "lexical", "hybrid"])
def test_text_search_in_every_mode_finds_the_theme(client, embedded_library, mode):
    response = client.get("/api/v1/search", params={"q": "astronauts in space", "mode": mode})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == mode
    top = [hit["title"] for hit in body["results"][:2]]
    space = {"Orbit of Silence", "Red Planet Harvest", "The Comet Chasers", "Rockets and Dreams"}
    assert set(top) <= space, top
    assert all(hit["why"] for hit in body["results"])


def test_similar_by_id_ranks_its_theme_first_with_filters(client, embedded_library):
    orbit = embedded_library["Orbit of Silence"]
    response = client.get(f"/api/v1/media/{orbit}/similar", params={"top": 3})
    assert response.status_code == 200, response.text
    titles = [hit["title"] for hit in response.json()["results"]]
    assert "Orbit of Silence" not in titles
    assert set(titles) == {"Red Planet Harvest", "The Comet Chasers", "Rockets and Dreams"}
    audio = client.get(f"/api/v1/media/{orbit}/similar", params={"type": "audio"}).json()
    assert audio["results"] and all(hit["media_type"] == "audio" for hit in audio["results"])
    grouped = client.get(f"/api/v1/media/{orbit}/similar", params={"cluster": True}).json()
    assert grouped["clusters"]


def test_media_page_shows_similar_items(client, embedded_library):
    orbit = embedded_library["Orbit of Silence"]
    page = client.get(f"/media/{orbit}")
    assert page.status_code == 200
    similar = page.text[page.text.index('id="similar"') :]
    assert f'href="/media/{embedded_library["Red Planet Harvest"]}"' in similar
