"""Catalogue import: CSV, JSON Lines and .nfo folders; updates, never duplicates."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from atlas.db.tables import media, media_tags
from atlas.errors import InvalidInput
from atlas.media import import_catalog, list_media, media_detail

CSV = """title,description,genres,tags,year,runtime,external_id
Deep Harbour,"Divers find a wreck.","[""Adventure"", ""Drama""]","ocean, wreck",2001,95,tmdb:1
Night Market,Food stalls at night.,Documentary,"[{""id"": 3, ""name"": ""food""}]",2019,,tmdb:2
"""


def _count(atlas, table):
    with atlas.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table))


def test_csv_catalogue_creates_records_with_user_confirmed_tags(atlas, tmp_path):
    source = tmp_path / "films.csv"
    source.write_text(CSV)
    report = import_catalog(atlas.dispatcher, source)
    assert len(report.created) == 2 and report.updated == []
    detail = media_detail(atlas.engine, report.created[0])
    assert detail.media.title == "Deep Harbour" and detail.media.origin == "catalog"
    assert (detail.media.year, detail.media.runtime_min, detail.media.genre) == (
        2001,
        95.0,
        "Adventure",
    )
    assert {(t.tag, t.kind, t.source) for t in detail.tags} == {
        ("Adventure", "genre", "user"),
        ("Drama", "genre", "user"),
        ("ocean", "keyword", "user"),
        ("wreck", "keyword", "user"),
    }
    second = media_detail(atlas.engine, report.created[1])
    assert [t.tag for t in second.tags if t.kind == "keyword"] == ["food"]


def test_reimport_updates_by_external_id_then_path_then_title_and_year(atlas, tmp_path):
    source = tmp_path / "films.csv"
    source.write_text(CSV)
    import_catalog(atlas.dispatcher, source)
    source.write_text(CSV.replace("Divers find a wreck.", "Divers find a ship."))
    again = import_catalog(atlas.dispatcher, source)
    assert again.created == [] and len(again.updated) == 2
    assert _count(atlas, media) == 2
    assert media_detail(atlas.engine, again.updated[0]).media.description == "Divers find a ship."

    lines = tmp_path / "more.jsonl"
    lines.write_text(
        json.dumps({"title": "Untitled Reel", "year": 1999, "tags": ["film"]})
        + "\n"
        + json.dumps({"title": "Untitled Reel", "year": 1999, "tags": ["archive"]})
        + "\n"
    )
    report = import_catalog(atlas.dispatcher, lines)
    assert len(report.created) == 1 and report.updated == report.created
    assert _count(atlas, media) == 3


def test_a_bad_row_names_its_line_and_nothing_is_written(atlas, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text(CSV + "Broken,,,,not-a-year,,\n")
    with pytest.raises(InvalidInput, match=r"bad.csv:4: column 'year'"):
        import_catalog(atlas.dispatcher, source)
    assert _count(atlas, media) == 0 and _count(atlas, media_tags) == 0


def test_over_long_tags_and_missing_titles_are_refused(atlas, tmp_path):
    source = tmp_path / "long.jsonl"
    source.write_text(json.dumps({"title": "X", "tags": ["a" * 10_000]}) + "\n")
    with pytest.raises(InvalidInput, match="long.jsonl:1: tag 'aaaa"):
        import_catalog(atlas.dispatcher, source)
    source.write_text(json.dumps({"name": "no title"}) + "\n")
    with pytest.raises(InvalidInput, match="long.jsonl:1: no 'title' column"):
        import_catalog(atlas.dispatcher, source)


def test_nfo_folder_is_a_catalogue(atlas, tmp_path):
    folder = tmp_path / "kodi" / "Harbour (2001)"
    folder.mkdir(parents=True)
    (folder / "movie.nfo").write_text(
        "<movie><title>Deep Harbour</title><year>2001</year><genre>Drama</genre>"
        "<uniqueid type='imdb'>tt01</uniqueid></movie>"
    )
    report = import_catalog(atlas.dispatcher, tmp_path / "kodi")
    [record] = list_media(atlas.engine).items
    assert report.created == [record.id]
    assert (record.title, record.external_id) == ("Deep Harbour", "imdb:tt01")


def test_catalog_cli(cli, tmp_path):
    source = tmp_path / "films.csv"
    source.write_text(CSV)
    result = cli("media-ingest", "--catalog", str(source))
    assert result.exit_code == 0, result.output
    assert "catalogue: 2 created, 0 updated" in result.stdout
    bad = cli("media-ingest", "--catalog", str(tmp_path / "films.xlsx"))
    assert bad.exit_code == 3
    assert bad.stderr == f"atlas: {tmp_path / 'films.xlsx'}: no such catalogue file or folder\n"
