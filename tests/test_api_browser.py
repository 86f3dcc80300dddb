"""End to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Search, open an item, play it, correct its tags, see the correction in the
feedback list, run the feedback loop from the rules page and see the rule it
made. Each page's screenshot is saved (``ATLAS_SCREENSHOT_DIR``, else the test's
temporary folder).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from _api import make_client
from _feedback import add_item
from atlas.api import Security, create_app
from atlas.db import utcnow
from atlas.db.tables import media, transcripts
from atlas.library import Library
from atlas.media import ingest_paths
from atlas.media.tags import Tag, upsert_tags
from conftest import free_port

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
uvicorn = pytest.importorskip("uvicorn")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.small_feedback,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]


@pytest.fixture
def server(atlas) -> Iterator[str]:
    """``atlas serve``'s app on a free loopback port, in a thread of this process."""
    port = free_port()
    config = uvicorn.Config(
        create_app(Library(atlas), Security()), host="127.0.0.1", port=port, log_level="warning"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ATLAS_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _library(atlas, media_maker, tmp_path: Path) -> int:
    """Three items the user already corrected ('sci-fi' is 'Science Fiction' to them), and a
    playable file whose automatic tags say 'sci-fi' too."""
    with make_client(atlas) as client:
        for n in range(3):
            item = add_item(atlas.engine, f"Taught {n}", auto=["sci-fi", f"extra{n}"])
            client.post(
                f"/api/v1/media/{item}/feedback", json={"tags": ["Science Fiction", f"extra{n}"]}
            ).raise_for_status()
    folder = tmp_path / "library"
    folder.mkdir()
    media_maker.copy(media_maker.audio("starship.mp3", seconds=6.0), folder / "starship.mp3")
    (song,) = ingest_paths(atlas.dispatcher, [folder]).media_ids
    with atlas.engine.begin() as connection:
        connection.execute(update(media).where(media.c.id == song).values(title="Starship Lullaby"))
        upsert_tags(
            connection,
            song,
            [
                Tag("sci-fi", source="auto", confidence=0.61, explanation="zero-shot 0.61"),
                Tag("lullaby", source="auto", confidence=0.55, explanation="keyphrase 'lullaby'"),
            ],
        )
        connection.execute(
            insert(transcripts).values(
                media_id=song,
                text="Hush now. The stars are near.",
                segments=[
                    {"start": 0.0, "end": 2.0, "text": "Hush now."},
                    {"start": 2.0, "end": 5.0, "text": "The stars are near."},
                ],
                source="whisper",
                created_at=utcnow(),
            )
        )
    return song


def test_search_play_correct_and_learn_in_a_real_browser(
    atlas, server, browser, shots, media_maker, tmp_path
):
    song = _library(atlas, media_maker, tmp_path)
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone-sized screen
    page.goto(f"{server}/")
    page.screenshot(path=shots / "library.png", full_page=True)

    # Search (keyboard: "/" focuses the box), open the item.
    page.keyboard.press("/")
    page.keyboard.type("starship lullaby")
    page.select_option("select[name=mode]", "lexical")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?q=*")
    page.screenshot(path=shots / "search.png", full_page=True)
    page.click("#results a:has-text('Starship Lullaby')")
    page.wait_for_url(f"**/media/{song}")
    page.click("#tags details summary >> nth=0")  # "why" was this tag given?
    assert "zero-shot 0.61" in page.inner_text("#tags")

    # Play it: a transcript timestamp seeks the player and starts it.
    page.click("button.seek[data-start='2.0']")
    page.wait_for_function(
        "document.getElementById('player').currentTime >= 2.0"
        " && !document.getElementById('player').paused",
        timeout=15_000,
    )
    page.screenshot(path=shots / "media.png", full_page=True)

    # Correct its tags: 'sci-fi' is 'Science Fiction' to this user too.
    page.fill("#correct input[name=tags]", "Science Fiction, lullaby")
    page.click("#correct button[type=submit]")
    page.wait_for_selector("#tags .src-user:has-text('Science Fiction')", timeout=15_000)
    page.screenshot(path=shots / "media-corrected.png", full_page=True)

    page.goto(f"{server}/feedback")
    first = page.inner_text("#feedback tbody tr:first-child")
    assert "tag_correction" in first and "Science Fiction" in first and str(song) in first
    page.screenshot(path=shots / "feedback.png", full_page=True)

    # The feedback loop, started on the rules page, makes the rule.
    page.goto(f"{server}/rules")
    page.click("#run-loop")
    page.wait_for_selector(
        "#rules td:has-text(\"'sci-fi' is replaced by 'Science Fiction'\")", timeout=60_000
    )
    assert "4 items" in page.inner_text("#rules tbody")
    page.screenshot(path=shots / "rules.png", full_page=True)

    for name in ("analytics", "tasks"):
        page.goto(f"{server}/{name}")
        page.screenshot(path=shots / f"{name}.png", full_page=True)
    assert page.inner_text("#tasks tbody").count("feedback-loop") >= 1
    page.close()
    assert sorted(path.name for path in shots.glob("*.png")) == sorted(
        f"{name}.png"
        for name in (
            "library",
            "search",
            "media",
            "media-corrected",
            "feedback",
            "rules",
            "analytics",
            "tasks",
        )
    )
