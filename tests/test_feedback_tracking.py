"""Recording the user's corrections: track-tag-edits, single tag edits, metadata edits."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from _feedback import add_item, feedback_rows, tag_new_item, tags_of
from atlas.db.tables import media, media_tag_rejections
from atlas.errors import NotFound
from atlas.feedback import add_user_tags, edit_metadata, remove_user_tags, track_tag_edits
from atlas.media.tags import Tag, tags_by_media, upsert_tags
from atlas.tagging import load_vocabulary


def _settings(atlas):
    return atlas.settings.feedback


def test_track_tag_edits_records_removed_added_replaced_and_makes_tags_the_users(atlas):
    item = add_item(atlas.engine, "Alien", auto=["Sci-Fi", "Drama", "Space"])
    # Compared normalised (case, spaces, unicode width); shown as first spelt.
    report = track_tag_edits(
        atlas.engine, _settings(atlas), item, tags="Science Fiction, ｄｒａｍａ,  SPACE , Horror"
    )

    assert tags_of(atlas.engine, item) == {
        "Science Fiction": "user",
        "Drama": "user",  # the first spelling is kept for display
        "Space": "user",
        "Horror": "user",
    }
    (row,) = feedback_rows(atlas.engine, item)
    assert row["feedback_type"] == "tag_correction" and row["source"] == "user"
    original, corrected = row["original_value"], row["corrected_value"]
    assert {t["tag"]: t["source"] for t in original["tags"]} == {
        "Sci-Fi": "auto",
        "Drama": "auto",
        "Space": "auto",
    }
    assert corrected["removed"] == ["Sci-Fi"]
    assert corrected["added"] == ["Science Fiction", "Horror"]
    assert corrected["replaced"] == [["Sci-Fi", "Science Fiction"]]
    assert sorted(corrected["confirmed"]) == ["Drama", "Space"]
    assert corrected["scope"] == "set"
    assert report.changes[0].replaced == [["Sci-Fi", "Science Fiction"]]


def test_one_feedback_row_per_changed_value_in_one_edit(atlas):
    item = add_item(atlas.engine, "Heat", auto=["crime"], genre="Drama")
    track_tag_edits(
        atlas.engine,
        _settings(atlas),
        item,
        tags="crime, heist",
        genre="Crime",
        rating=4.5,
        confidence=0.8,
    )
    rows = feedback_rows(atlas.engine, item)
    assert [r["feedback_type"] for r in rows] == ["tag_correction", "metadata_edit", "rating"]
    assert rows[1]["original_value"] == {"field": "genre", "value": "Drama"}
    assert rows[1]["corrected_value"] == {"field": "genre", "value": "Crime"}
    assert rows[2]["corrected_value"] == {"field": "rating", "value": 4.5}
    assert {r["confidence_score"] for r in rows} == {0.8}
    with atlas.engine.connect() as connection:
        row = connection.execute(
            select(media.c.genre, media.c.rating).where(media.c.id == item)
        ).one()
    assert (row.genre, row.rating) == ("Crime", 4.5)


def test_unchanged_tag_set_and_genre_are_recorded_as_confirmations_but_an_unchanged_rating_is_not(
    atlas,
):
    item = add_item(atlas.engine, "Up", auto=["animation"], genre="Animation")
    with atlas.engine.begin() as connection:
        connection.execute(media.update().where(media.c.id == item).values(rating=4.0))
    track_tag_edits(
        atlas.engine, _settings(atlas), item, tags="Animation", genre="animation", rating=4.0
    )
    rows = feedback_rows(atlas.engine, item)
    assert [r["feedback_type"] for r in rows] == ["tag_correction", "metadata_edit"]
    assert rows[0]["corrected_value"]["added"] == [] and rows[0]["corrected_value"]["removed"] == []
    assert rows[0]["corrected_value"]["confirmed"] == ["animation"]
    assert tags_of(atlas.engine, item) == {"animation": "user"}


def test_removed_tag_is_remembered_and_the_tagger_does_not_add_it_back(atlas):
    item = add_item(atlas.engine, "Jaws", auto=["shark", "comedy"])
    track_tag_edits(atlas.engine, _settings(atlas), item, tags="shark")
    with atlas.engine.connect() as connection:
        rejected = connection.execute(select(media_tag_rejections.c.tag_norm)).scalars().all()
    assert rejected == ["comedy"]

    result = tag_new_item(atlas.engine, item, ["Comedy", "ocean"])
    assert [t.tag for t in result.tags] == ["ocean"]
    assert tags_of(atlas.engine, item) == {"shark": "user", "ocean": "auto"}

    # Adding it back by hand lifts the rejection.
    add_user_tags(atlas.engine, _settings(atlas), item, "comedy")
    with atlas.engine.connect() as connection:
        assert connection.execute(select(media_tag_rejections)).all() == []


def test_single_tag_add_and_remove_are_feedback(atlas):
    item = add_item(atlas.engine, "Rocky", auto=["boxing", "romance"])
    add_user_tags(atlas.engine, _settings(atlas), item, ["sports", "Boxing"])
    remove_user_tags(atlas.engine, _settings(atlas), item, "romance")
    rows = feedback_rows(atlas.engine, item)
    assert [r["corrected_value"]["scope"] for r in rows] == ["add", "remove"]
    assert rows[0]["corrected_value"]["added"] == ["sports"]
    assert rows[0]["corrected_value"]["confirmed"] == ["boxing"]
    assert rows[1]["corrected_value"]["removed"] == ["romance"]
    assert tags_of(atlas.engine, item) == {"boxing": "user", "sports": "user"}

    # The user's tags already: nothing changes, nothing is recorded.
    add_user_tags(atlas.engine, _settings(atlas), item, "sports")
    assert len(feedback_rows(atlas.engine, item)) == 2


def test_removing_a_tag_the_item_lacks_changes_nothing(atlas):
    item = add_item(atlas.engine, "Rocky", auto=["boxing"])
    with pytest.raises(NotFound, match=r"media \d+ has no tag 'opera'"):
        remove_user_tags(atlas.engine, _settings(atlas), item, ["boxing", "opera"])
    assert tags_of(atlas.engine, item) == {"boxing": "auto"}
    assert feedback_rows(atlas.engine) == []


def test_metadata_edit_records_each_changed_field(atlas):
    item = add_item(atlas.engine, "Alein", genre="Horror")
    edit_metadata(atlas.engine, _settings(atlas), item, title="Alien", genre="Horror", year=1979)
    rows = feedback_rows(atlas.engine, item)
    assert [r["corrected_value"]["field"] for r in rows] == ["title", "year"]
    assert rows[0]["original_value"] == {"field": "title", "value": "Alein"}


# --- the CLI and bad input ----------------------------------------------------------


def _cli_item(cli, atlas):
    return add_item(atlas.engine, "Alien", auto=["Sci-Fi"])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--media", "999", "--tags", "A"], 3, "atlas: no media with id 999"),
        (["--tags", " , ,"], 2, "atlas: --tags needs at least one tag"),
        (["--tags", ""], 2, "atlas: --tags needs at least one tag"),
        (
            ["--rating", "5.5"],
            2,
            "atlas: --rating must be between 0 and 5 in steps of 0.5, got 5.5",
        ),
        (["--rating", "-1"], 2, "atlas: --rating must be between 0 and 5 in steps of 0.5, got -1"),
        (
            ["--rating", "3.3"],
            2,
            "atlas: --rating must be between 0 and 5 in steps of 0.5, got 3.3",
        ),
        (
            ["--tags", "A", "--confidence", "1.5"],
            2,
            "atlas: --confidence must be between 0 and 1, got 1.5",
        ),
        (
            ["--tags", "A", "--confidence", "-0.1"],
            2,
            "atlas: --confidence must be between 0 and 1, got -0.1",
        ),
        (
            ["--tags", "x" * 10_000],
            2,
            "atlas: --tags is 10,000 characters long; the limit is 2,000",
        ),
        (
            ["--tags", "ab, " * 2500],
            2,
            "atlas: --tags is 10,000 characters long; the limit is 2,000",
        ),
        (
            ["--tags", "y" * 150],
            2,
            "atlas: tag 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy'... is 150 characters long; "
            "the limit is 100",
        ),
        (["--tags", "ok, bad\x07tag"], 2, "atlas: tag 'bad\\x07tag' contains control characters"),
        ([], 2, "atlas: nothing to record: give --tags, --genre and/or --rating"),
        (["--genre", "  "], 2, "atlas: --genre cannot be empty"),
    ],
)
def test_track_tag_edits_bad_input_gives_one_line_and_writes_nothing(
    atlas, cli, args, code, message
):
    item = _cli_item(cli, atlas)
    if "--media" not in args:
        args = ["--media", str(item), *args]
    result = cli("track-tag-edits", *args)
    assert result.exit_code == code
    assert result.stderr.strip() == message
    assert "Traceback" not in result.output
    assert feedback_rows(atlas.engine) == []
    assert tags_of(atlas.engine, item) == {"Sci-Fi": "auto"}


def test_track_tag_edits_cli_prints_the_correction_and_json(atlas, cli):
    item = add_item(atlas.engine, "Alien", auto=["Sci-Fi", "Drama"])
    result = cli("track-tag-edits", "--media", str(item), "--tags", "Science Fiction, Drama")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"media {item}: tags: removed Sci-Fi; added Science Fiction (replacing Sci-Fi); "
        "confirmed Drama"
    )
    result = cli("track-tag-edits", "--media", str(item), "--rating", "4.5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["changes"][0]["name"] == "rating" and data["changes"][0]["after"] == 4.5


def test_media_edit_cli_records_metadata_feedback(atlas, cli):
    item = add_item(atlas.engine, "Alein")
    result = cli("media", "edit", str(item), "--title", "Alien")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"media {item}: title 'Alein' -> 'Alien'"
    assert feedback_rows(atlas.engine, item)[0]["feedback_type"] == "metadata_edit"
    result = cli("media", "edit", str(item), "--year", "3000")
    assert result.exit_code == 2
    assert result.stderr.strip() == "atlas: --year must be a year between 1800 and 2200, got 3000"
    assert len(feedback_rows(atlas.engine, item)) == 1


# --- a tag's kind -----------------------------------------------------------------------


def _kinds(engine, media_id):
    with engine.connect() as connection:
        return {tag.tag: tag.kind for tag in tags_by_media(connection, [media_id])[media_id]}


def test_a_genre_of_the_vocabulary_stays_a_genre_whoever_typed_it(atlas):
    vocabulary = load_vocabulary(atlas.settings.tagging).kinds()
    item = add_item(atlas.engine, "Star Quest", auto=["space"])
    track_tag_edits(
        atlas.engine,
        _settings(atlas),
        item,
        tags="Action, adventure, Sci-Fi",
        vocabulary_kinds=vocabulary,
    )
    kinds = _kinds(atlas.engine, item)
    # Action and Adventure are genres of the shipped vocabulary; Sci-Fi is not in it.
    assert kinds == {"Action": "genre", "adventure": "genre", "Sci-Fi": "topic"}

    other = add_item(atlas.engine, "Heist Night")
    add_user_tags(atlas.engine, _settings(atlas), other, "Action", vocabulary_kinds=vocabulary)
    assert _kinds(atlas.engine, other) == {"Action": "genre"}


def test_a_tag_outside_the_vocabulary_keeps_the_kind_the_library_holds_it_as(atlas):
    first = add_item(atlas.engine, "One")
    second = add_item(atlas.engine, "Two")
    with atlas.engine.begin() as connection:
        upsert_tags(connection, first, [Tag("heist", kind="keyword", source="auto")])
        # "topic" is the kind of a tag nothing spoke for: it does not outvote the library.
        upsert_tags(connection, second, [Tag("Heist", kind="topic", source="user")])
        upsert_tags(connection, second, [Tag("Noir", kind="genre", source="user")])
    item = add_item(atlas.engine, "Three")
    track_tag_edits(atlas.engine, _settings(atlas), item, tags="Heist, noir, Robots")
    assert _kinds(atlas.engine, item) == {"Heist": "keyword", "noir": "genre", "Robots": "topic"}


def test_a_kind_the_user_chose_wins_and_a_tag_already_on_the_item_keeps_its_kind(atlas):
    vocabulary = load_vocabulary(atlas.settings.tagging).kinds()
    item = add_item(atlas.engine, "Mixed")
    with atlas.engine.begin() as connection:
        upsert_tags(connection, item, [Tag("Drama", kind="genre", source="auto")])
    add_user_tags(
        atlas.engine, _settings(atlas), item, "Action", kind="topic", vocabulary_kinds=vocabulary
    )
    track_tag_edits(
        atlas.engine, _settings(atlas), item, tags="Action, Drama", vocabulary_kinds=vocabulary
    )
    assert _kinds(atlas.engine, item) == {"Action": "topic", "Drama": "genre"}
