"""The user's work is never overwritten: each edit path (title, genre, rating, a removed
tag, a confirmed or added tag, a moved file) against catalogue re-import, re-ingest of a
changed file and .nfo, and retagging with learned rules; on both databases."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from atlas.db import utcnow
from atlas.db.tables import learning_rules, library_roots, media
from atlas.feedback import (
    edit_metadata,
    feedback_loop,
    move_media,
    remove_user_tags,
    track_tag_edits,
)
from atlas.feedback.wording import pattern_key
from atlas.media import import_catalog, ingest_paths, media_detail
from atlas.media.catalog import CatalogEntry, store_entries
from atlas.media.tags import Tag, normalise_tag
from atlas.media.userwork import Kept
from atlas.tagging import retag_media
from conftest import STATION, requires_ffmpeg

EDITS = ["title", "genre", "rating", "removed_tag", "confirmed_tag", "moved_file"]


def _media_count(atlas) -> int:
    with atlas.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(media)))


def _tags(atlas, media_id) -> dict[str, Tag]:
    return {tag.tag: tag for tag in media_detail(atlas.engine, media_id).tags}


def _add_root(atlas, folder: Path) -> None:
    with atlas.engine.begin() as connection:
        connection.execute(insert(library_roots).values(path=str(folder), added_at=utcnow()))


@dataclass
class Edit:
    """What the user did, and how to tell it survived."""

    check: Callable[[], None]
    #: What an import that meets the edit reports as kept.
    kept: Kept


def _make_edit(atlas, media_id: int, edit: str, library: Path, *, tag: str, other: str) -> Edit:
    """Make ``edit`` on the item as the user would. ``tag``: one of its tags the edit of a
    tag acts on; ``other``: one more of its tags."""
    feedback = atlas.settings.feedback
    detail = media_detail(atlas.engine, media_id)
    if edit == "title":
        edit_metadata(atlas.engine, feedback, media_id, title="My Own Title")
        return Edit(lambda: _field(atlas, media_id, "title", "My Own Title"), Kept(fields=1))
    if edit == "genre":
        edit_metadata(atlas.engine, feedback, media_id, genre="Slow Cinema")
        return Edit(lambda: _field(atlas, media_id, "genre", "Slow Cinema"), Kept(fields=1))
    if edit == "rating":
        track_tag_edits(atlas.engine, feedback, media_id, rating=0.5)
        return Edit(lambda: _field(atlas, media_id, "rating", 0.5), Kept(fields=1))
    if edit == "removed_tag":
        remove_user_tags(atlas.engine, feedback, media_id, tag)

        def removed() -> None:
            assert normalise_tag(tag) not in {t.norm for t in _tags(atlas, media_id).values()}

        return Edit(removed, Kept(removed_tags=1))
    if edit == "confirmed_tag":
        # The full set, one tag added: every tag the user's, at the user's confidence.
        names = [t.tag for t in detail.tags] + ["Watched Twice"]
        track_tag_edits(atlas.engine, feedback, media_id, tags=names, confidence=0.8)
        before = {
            name: (t.kind, t.source, t.confidence) for name, t in _tags(atlas, media_id).items()
        }
        assert set(before) == set(names) and {tag, other} <= set(names)
        assert {source for _kind, source, _confidence in before.values()} == {"user"}

        def confirmed() -> None:
            after = _tags(atlas, media_id)
            for name, (kind, source, confidence) in before.items():
                assert (after[name].kind, after[name].source, after[name].confidence) == (
                    kind,
                    source,
                    confidence,
                ), name
                assert after[name].explanation == "set by the user"

        return Edit(confirmed, Kept())
    assert edit == "moved_file"
    (library / "archive").mkdir(exist_ok=True)
    report = move_media(atlas.engine, feedback, media_id, library / "archive")
    assert report.source == detail.media.path
    return Edit(lambda: _field(atlas, media_id, "path", report.target), Kept(fields=1))


def _field(atlas, media_id: int, name: str, value: Any) -> None:
    assert getattr(media_detail(atlas.engine, media_id).media, name) == value


# --- catalogue re-import -----------------------------------------------------------------

CATALOGUE = """title,description,genres,tags,year,rating,external_id,path
Deep Harbour,{description},"Adventure, Drama","ocean, wreck",2001,3.5,tmdb:1,{path}
"""


@pytest.fixture
def catalogued(atlas, tmp_path):
    """One catalogue record whose file is in the library (not ingested)."""
    library = tmp_path / "library"
    library.mkdir()
    film = library / "harbour.mp4"
    film.write_bytes(b"the film")
    _add_root(atlas, library)
    source = tmp_path / "films.csv"

    def write(description: str) -> Path:
        source.write_text(CATALOGUE.format(description=description, path=film))
        return source

    [media_id] = import_catalog(atlas.dispatcher, write("Divers find a wreck.")).created
    return media_id, library, write


@pytest.mark.parametrize("edit", EDITS)
def test_catalogue_reimport_keeps_the_users_edit_and_says_so(atlas, catalogued, edit):
    media_id, library, write = catalogued
    made = _make_edit(atlas, media_id, edit, library, tag="wreck", other="ocean")
    report = import_catalog(atlas.dispatcher, write("Divers find a ship."))
    assert (report.created, report.updated) == ([], [media_id])
    made.check()
    assert report.kept == made.kept
    # What the user never edited still follows the catalogue.
    assert media_detail(atlas.engine, media_id).media.description == "Divers find a ship."
    assert _media_count(atlas) == 1
    # The same file again: still a no-op for the user's edit.
    again = import_catalog(atlas.dispatcher, write("Divers find a ship."))
    made.check()
    assert again.kept == made.kept


def test_catalogue_cli_says_how_many_edits_it_kept(atlas, catalogued, cli):
    media_id, _library, write = catalogued
    feedback = atlas.settings.feedback
    edit_metadata(atlas.engine, feedback, media_id, title="Harbour", genre="Sea", year=2002)
    remove_user_tags(atlas.engine, feedback, media_id, ["wreck", "Drama"])
    source = write("Divers find a ship.")
    result = cli("media-ingest", "--catalog", str(source))
    assert result.exit_code == 0, result.output
    assert (
        result.stdout
        == "catalogue: 0 created, 1 updated; kept 3 fields and 2 removed tags you edited\n"
    )
    as_json = cli("media-ingest", "--catalog", str(source), "--json")
    assert json.loads(as_json.stdout)["kept"] == {"fields": 3, "removed_tags": 2}
    detail = media_detail(atlas.engine, media_id)
    assert (detail.media.title, detail.media.genre, detail.media.year) == ("Harbour", "Sea", 2002)
    assert {t.tag for t in detail.tags} == {"Adventure", "ocean"}


def test_a_record_the_user_renamed_is_found_again_without_ids(atlas, tmp_path):
    source = tmp_path / "reels.jsonl"
    source.write_text(json.dumps({"title": "Untitled Reel", "year": 1999, "tags": ["film"]}))
    [media_id] = import_catalog(atlas.dispatcher, source).created
    feedback = atlas.settings.feedback
    edit_metadata(atlas.engine, feedback, media_id, title="Grandpa's Wedding", year=1961)
    report = import_catalog(atlas.dispatcher, source)
    assert (report.created, report.updated) == ([], [media_id])
    assert report.kept == Kept(fields=2)
    record = media_detail(atlas.engine, media_id).media
    assert (record.title, record.year) == ("Grandpa's Wedding", 1961)
    assert _media_count(atlas) == 1


# --- re-ingest of a changed file and .nfo --------------------------------------------------

NFO = (
    "<movie><title>{title}</title><genre>{genre}</genre><tag>trains</tag><tag>night</tag>"
    "<tag>{extra}</tag><rating>{rating}</rating><year>2013</year></movie>"
)


@pytest.fixture
def ingested(atlas, tmp_path, media_maker):
    """A film with an .nfo, ingested."""
    library = tmp_path / "library"
    film = media_maker.copy(media_maker.video("film.mp4", seconds=1), library / "film.mp4")
    (library / "film.nfo").write_text(
        NFO.format(title="Night Train", genre="Drama", extra="steam", rating=7)
    )
    [item] = ingest_paths(atlas.dispatcher, [library]).items
    assert item.status == "new"
    return item.media_id, library, film


@requires_ffmpeg
@pytest.mark.slow
@pytest.mark.parametrize("edit", EDITS)
def test_reingest_of_a_changed_file_and_nfo_keeps_the_users_edit(
    atlas, ingested, media_maker, edit
):
    media_id, library, film = ingested
    made = _make_edit(atlas, media_id, edit, library, tag="night", other="trains")
    film = Path(media_detail(atlas.engine, media_id).media.path or "")
    # The file changes, and so does its .nfo, which still names every tag.
    media_maker.copy(media_maker.video("film-longer.mp4", seconds=2), film)
    film.with_suffix(".nfo").write_text(
        NFO.format(title="Night Train to Lisbon", genre="Mystery", extra="lisbon", rating=9)
    )
    report = ingest_paths(atlas.dispatcher, [library], recursive=True)
    changed = [item for item in report.items if item.status != "unchanged"]
    assert [(item.status, item.media_id) for item in changed] == [("updated", media_id)]
    made.check()
    # Counted: the user's fields the new .nfo says otherwise, and the removed tags it
    # names again (nothing in a file contradicts where the user moved it).
    assert report.kept == (Kept() if edit == "moved_file" else made.kept)
    assert "lisbon" in _tags(atlas, media_id)  # new curated tags still arrive
    assert _media_count(atlas) == 1


@requires_ffmpeg
@pytest.mark.slow
def test_a_forced_reingest_does_not_bring_back_a_removed_nfo_tag(atlas, ingested, cli):
    media_id, library, _film = ingested
    remove_user_tags(atlas.engine, atlas.settings.feedback, media_id, ["night", "trains"])
    result = cli("media-ingest", str(library), "--force")
    assert result.exit_code == 0, result.output
    assert "1 file(s): 1 updated; kept 2 removed tags you edited" in result.stdout
    assert set(_tags(atlas, media_id)) == {"Drama", "steam"}


@requires_ffmpeg
@pytest.mark.slow
def test_ingest_adopting_a_catalogue_record_keeps_the_users_edits(atlas, tmp_path, media_maker):
    source = tmp_path / "films.jsonl"
    source.write_text(
        json.dumps({"title": "Night Train", "tags": ["night", "trains"], "external_id": "tmdb:7"})
    )
    [media_id] = import_catalog(atlas.dispatcher, source).created
    feedback = atlas.settings.feedback
    edit_metadata(atlas.engine, feedback, media_id, title="My Train")
    remove_user_tags(atlas.engine, feedback, media_id, "night")
    library = tmp_path / "library"
    media_maker.copy(media_maker.video("film.mp4", seconds=1), library / "film.mp4")
    (library / "film.nfo").write_text(
        NFO.format(title="Night Train", genre="Drama", extra="steam", rating=7).replace(
            "</movie>", "<uniqueid type='tmdb'>7</uniqueid></movie>"
        )
    )
    [item] = ingest_paths(atlas.dispatcher, [library]).items
    assert (item.status, item.media_id) == ("updated", media_id)
    assert item.kept == Kept(fields=1, removed_tags=1)
    detail = media_detail(atlas.engine, media_id)
    assert detail.media.title == "My Train" and detail.media.path == str(library / "film.mp4")
    assert "night" not in {t.tag for t in detail.tags}


# --- retagging and learned rules ----------------------------------------------------------


def _add_rule(atlas, rule_type: str, action: dict[str, Any]) -> None:
    now = utcnow()
    with atlas.engine.begin() as connection:
        connection.execute(
            insert(learning_rules).values(
                rule_type=rule_type,
                condition_text=json.dumps({"media_type": "video"}),
                action_text=json.dumps(action),
                confidence=0.95,
                created_from_feedback=True,
                usage_count=0,
                created_at=now,
                updated_at=now,
                pattern_key=pattern_key("test", rule_type, json.dumps(action)),
                description="a rule made for the test",
                support=10,
                enabled=True,
                success_count=0,
                failure_count=0,
            )
        )


@pytest.mark.slow
@pytest.mark.parametrize("edit", EDITS)
def test_retagging_and_learned_rules_keep_the_users_edit(tagger, tmp_path, edit):
    library = tmp_path / "library"
    library.mkdir()
    film = library / "station.mp4"
    film.write_bytes(b"the film")
    _add_root(tagger, library)
    (station,), _ = store_entries(tagger.engine, [CatalogEntry.model_validate(STATION)])
    with tagger.engine.begin() as connection:  # as if ingested: a file, no curated genre
        connection.execute(
            update(media).where(media.c.id == station).values(path=str(film), origin="file")
        )
    retag_media(tagger.dispatcher, targets=[str(station)])
    auto = sorted(t.tag for t in _tags(tagger, station).values() if t.source == "auto")
    assert len(auto) >= 2, auto
    made = _make_edit(tagger, station, edit, library, tag=auto[0], other=auto[1])

    # Rules that would undo each kind of edit, were they allowed to.
    for name in auto[:2]:
        norm = normalise_tag(name)
        _add_rule(tagger, "tag_removal", {"op": "remove_tag", "tag": norm})
        _add_rule(tagger, "tag_addition", {"op": "add_tag", "tag": norm, "display": name})
    _add_rule(tagger, "genre_correction", {"op": "set_genre", "to": "Documentary"})
    (library / "sorted").mkdir()
    _add_rule(
        tagger, "file_organisation", {"op": "move_to_folder", "folder": str(library / "sorted")}
    )

    retagged = retag_media(tagger.dispatcher, targets=[str(station)], force=True)
    assert retagged.summary() == {"tagged": 1}
    made.check()
    feedback_loop(tagger.dispatcher, apply_rules=True, move_files=True)
    made.check()
    # The rules did act where the user had not spoken (so the test can tell).
    detail = media_detail(tagger.engine, station)
    if edit != "genre":
        assert detail.media.genre == "Documentary"
    if edit != "moved_file":
        assert detail.media.path == str(library / "sorted" / "station.mp4")
