"""An item's content words, stored with the hash of the texts they were made from."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from _feedback import add_item
from atlas.db.tables import media
from atlas.feedback import edit_metadata, run_feedback_loop, track_tag_edits
from atlas.feedback.context import load_contexts
from atlas.media import import_catalog
from atlas.media.words import MAX_WORDS, refresh_words, text_words, words_key
from atlas.transcription.store import save_transcript
from atlas.transcription.whisper import Transcript


def _stored(engine, media_id):
    with engine.connect() as connection:
        row = connection.execute(
            select(media.c.words, media.c.words_key).where(media.c.id == media_id)
        ).one()
    return row.words, row.words_key


def _words(engine, media_id):
    with engine.connect() as connection:
        return load_contexts(connection, [media_id])[media_id].words


def _catalogue_item(atlas, tmp_path: Path) -> int:
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text(
        "title,description,genres\n"
        'Heist Night,"A crew plans the heist of a casino, and the heist goes wrong.",Crime\n',
        encoding="utf-8",
    )
    (media_id,) = import_catalog(atlas.dispatcher, catalogue).created
    return media_id


def test_text_words_are_the_first_distinct_content_words_normalised():
    words = text_words("The HEIST", "A crew's heist of the Ｃａｓｉｎｏ: 3 nights, x-ray vision")
    assert words == {"heist", "crew's", "casino", "nights", "x-ray", "vision"}
    many = " ".join(f"word{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(100))
    assert len(text_words(many.replace("word", "w"))) == MAX_WORDS


def test_an_imported_item_stores_its_words_and_readers_use_them(atlas, tmp_path):
    item = _catalogue_item(atlas, tmp_path)
    stored, key = _stored(atlas.engine, item)
    assert stored.split() == ["heist", "night", "crew", "plans", "casino", "goes", "wrong"]
    assert key == words_key(
        "Heist Night", "A crew plans the heist of a casino, and the heist goes wrong.", None
    )
    # While the key matches the texts, readers take the stored words as they are.
    with atlas.engine.begin() as connection:
        connection.execute(update(media).where(media.c.id == item).values(words="planted"))
    assert _words(atlas.engine, item) == {"planted"}


def test_stale_words_are_never_used(atlas, tmp_path):
    item = _catalogue_item(atlas, tmp_path)
    # A text changed by a writer that did not refresh the words: the key no longer
    # matches, so the words are made from the texts again.
    with atlas.engine.begin() as connection:
        connection.execute(
            update(media).where(media.c.id == item).values(description="A quiet harbour town.")
        )
    assert _words(atlas.engine, item) == {"heist", "night", "quiet", "harbour", "town"}
    with atlas.engine.begin() as connection:
        assert refresh_words(connection, [item]) == 1
        assert refresh_words(connection, [item]) == 0  # up to date: nothing to do
    assert _stored(atlas.engine, item)[0] == "heist night quiet harbour town"


def test_title_edits_and_transcripts_refresh_the_words(atlas, tmp_path):
    item = _catalogue_item(atlas, tmp_path)
    edit_metadata(atlas.engine, atlas.settings.feedback, item, title="Casino Royale")
    assert _stored(atlas.engine, item)[0].split()[:2] == ["casino", "royale"]
    save_transcript(
        atlas.engine,
        item,
        Transcript(text="Diamonds are forever.", segments=[], source="sidecar"),
        None,
    )
    stored, key = _stored(atlas.engine, item)
    assert stored.split()[-2:] == ["diamonds", "forever"]
    assert key == words_key(
        "Casino Royale",
        "A crew plans the heist of a casino, and the heist goes wrong.",
        "Diamonds are forever.",
    )


def test_the_feedback_loop_stores_missing_words_unless_it_is_a_dry_run(atlas):
    # Items from before words were stored have none.
    item = add_item(atlas.engine, "Alien", auto=["Sci-Fi"], description="A ship in deep space.")
    track_tag_edits(atlas.engine, atlas.settings.feedback, item, tags="Science Fiction")
    assert _stored(atlas.engine, item) == (None, None)
    assert _words(atlas.engine, item) == {"alien", "ship", "deep", "space"}

    run_feedback_loop(atlas.engine, atlas.settings.feedback, dry_run=True)
    assert _stored(atlas.engine, item) == (None, None)
    run_feedback_loop(atlas.engine, atlas.settings.feedback, mode="analyze")
    assert _stored(atlas.engine, item)[0] == "alien ship deep space"
