"""``atlas media-tags list|add|remove|retag``: output, feedback, and one clear line on bad input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select

from atlas.db import utcnow
from atlas.db.tables import media, media_tags, user_feedback
from atlas.media.catalog import CatalogEntry, store_entries
from atlas.media.tags import Tag, upsert_tags


@pytest.fixture
def item(atlas):
    entry = CatalogEntry.model_validate(
        {
            "title": "Orbit of Silence",
            "description": "An astronaut alone on a space station loses contact with mission "
            "control.",
        }
    )
    (media_id,), _ = store_entries(atlas.engine, [entry])
    with atlas.engine.begin() as connection:
        upsert_tags(
            connection,
            media_id,
            [
                Tag("Space", source="user"),
                Tag(
                    "astronaut",
                    kind="keyword",
                    source="auto",
                    confidence=0.42,
                    explanation="keyphrase of the description (0.55)",
                ),
            ],
        )
    return media_id


def test_list_shows_each_tag_with_source_and_confidence(cli, item):
    result = cli("media-tags", "list", str(item))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"media {item}: Orbit of Silence\n")
    lines = result.stdout.splitlines()
    assert any("Space" in line and "user" in line and "1.00" in line for line in lines)
    assert any("astronaut" in line and "auto" in line and "0.42" in line for line in lines)

    explained = cli("media-tags", "list", str(item), "--explain")
    assert (
        "  astronaut (keyword, auto 0.42): keyphrase of the description (0.55)" in explained.stdout
    )
    data = json.loads(cli("media-tags", "list", str(item), "--json").stdout)
    assert data["id"] == item and data["title"] == "Orbit of Silence"
    assert [(t["tag"], t["source"]) for t in data["tags"]] == [
        ("Space", "user"),
        ("astronaut", "auto"),
    ]


def test_a_target_may_be_the_path_of_an_ingested_file(cli, atlas, tmp_path):
    path = tmp_path / "talk.mp3"
    path.write_bytes(b"not really audio; only its path matters here")
    entry = CatalogEntry.model_validate({"title": "Talk", "path": str(path)})
    (media_id,), _ = store_entries(atlas.engine, [entry])
    result = cli("media-tags", "list", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == media_id


def test_add_and_remove_are_user_edits_recorded_as_feedback(cli, atlas, item):
    added = cli("media-tags", "add", str(item), "Astronauts", "astronaut", "--kind", "keyword")
    assert added.exit_code == 0, added.output
    assert added.stdout.splitlines()[0] == (f"media {item}: added Astronauts; confirmed astronaut")
    assert added.stdout.splitlines()[1] == "tags: astronaut (user), Astronauts (user), Space (user)"
    again = cli("media-tags", "add", str(item), "space")
    assert again.stdout.splitlines()[0] == f"media {item}: nothing changed (already your tags)"

    removed = cli("media-tags", "remove", str(item), "SPACE")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout.splitlines() == [
        f"media {item}: removed Space",
        "tags: astronaut (user), Astronauts (user)",
    ]
    with atlas.engine.connect() as connection:
        rows = connection.execute(
            select(user_feedback.c.feedback_type, user_feedback.c.corrected_value).where(
                user_feedback.c.media_id == item
            )
        ).all()
    scopes = [json.loads(value)["scope"] for kind, value in rows if kind == "tag_correction"]
    assert scopes == ["add", "remove"]


@pytest.mark.parametrize(
    ("args", "line", "code"),
    [
        (("list", "999"), "atlas: no media with id 999", 3),
        (("add", "{item}", ""), "atlas: a tag cannot be empty", 2),
        (
            ("add", "{item}", "x", "--kind", "mood"),
            "atlas: unknown tag kind 'mood'; use genre, topic or keyword",
            2,
        ),
        (("remove", "{item}", "jazz"), "atlas: media {item} has no tag 'jazz'", 3),
        (
            ("list", " "),
            "atlas: the target is empty; give a media id or the path of a media file",
            2,
        ),
        (("retag",), "atlas: say what to tag: TARGET..., --all or --untagged (one of them)", 2),
        (
            ("retag", "{item}", "--all"),
            "atlas: say what to tag: TARGET..., --all or --untagged (one of them)",
            2,
        ),
        (("retag", "--all", "--batch", "0"), "atlas: --batch must be between 1 and 1024", 2),
    ],
)
def test_bad_input_is_one_clear_line(cli, item, args, line, code):
    result = cli("media-tags", *[a.format(item=item) for a in args])
    assert (result.exit_code, result.stderr) == (code, line.format(item=item) + "\n")
    assert result.stdout == ""


def test_paths_that_are_not_library_media_are_refused(cli, item, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list")
    video = tmp_path / "new.mp4"
    video.write_bytes(b"x")
    cases = [
        (notes, f"atlas: {notes} is not a media file", 2),
        (
            video,
            f"atlas: {video} is not in the library; ingest it first: atlas media-ingest {video}",
            3,
        ),
        (
            tmp_path,
            f"atlas: {tmp_path} is a folder; give a media id or the path of a media file",
            2,
        ),
        (
            tmp_path / "gone.mkv",
            f"atlas: {tmp_path / 'gone.mkv'}: no such file, and no media id",
            3,
        ),
    ]
    for path, line, code in cases:
        result = cli("media-tags", "retag", str(path))
        assert (result.exit_code, result.stderr) == (code, line + "\n")


def test_an_item_without_words_is_refused_when_named(cli, atlas):
    now = utcnow()
    with atlas.engine.begin() as connection:
        empty = connection.execute(
            insert(media)
            .values(origin="file", media_type="other", created_at=now, updated_at=now)
            .returning(media.c.id)
        ).scalar_one()
    result = cli("media-tags", "retag", str(empty))
    assert (result.exit_code, result.stderr) == (
        2,
        f"atlas: media {empty} has nothing to tag (no title, description or transcript)\n",
    )


def test_a_bad_vocabulary_file_is_one_line_before_any_task(cli, item, tmp_path):
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("Travel\ntravel\n")
    result = cli(
        "media-tags", "retag", str(item), env={"ATLAS_TAGGING__VOCABULARY_FILE": str(vocabulary)}
    )
    assert (result.exit_code, result.stderr) == (
        2,
        f"atlas: {vocabulary}, line 2: 'travel' is already on line 1\n",
    )


@pytest.mark.slow
def test_retag_explains_each_tag_and_reports_json(cli, item, embedding_model):
    result = cli("media-tags", "retag", str(item), "--explain")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"media {item}: Orbit of Silence (tagged)"
    assert "  Space (topic, user 1.00): no explanation stored" in lines  # left as it was
    assert any(
        "(keyword, auto " in line and "keyphrase of the description" in line for line in lines
    )
    assert lines[-1] == "1 item(s): 1 tagged"

    data = json.loads(cli("media-tags", "retag", str(item), "--json").stdout)
    assert data["summary"] == {"unchanged": 1} and data["errors"] == []
    (entry,) = data["items"]
    assert entry["id"] == item and entry["status"] == "unchanged"
    assert all(tag["explanation"] for tag in entry["tags"] if tag["source"] == "auto")


def test_a_genre_typed_by_the_user_is_stored_as_a_genre(cli, atlas, item):
    # Action and Adventure are genres of the shipped vocabulary, whoever types them.
    edited = cli("track-tag-edits", "--media", str(item), "--tags", "Action, Adventure, Sci-Fi")
    assert edited.exit_code == 0, edited.output
    added = cli("media-tags", "add", str(item), "Drama")
    assert added.exit_code == 0, added.output
    with atlas.engine.connect() as connection:
        rows = connection.execute(
            select(media_tags.c.tag, media_tags.c.kind).where(media_tags.c.media_id == item)
        ).all()
    assert dict(rows) == {
        "Action": "genre",
        "Adventure": "genre",
        "Sci-Fi": "topic",
        "Drama": "genre",
    }
