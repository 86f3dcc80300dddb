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


# --- rows checked as strictly as the CLI ----------------------------------------------------

HEADER = "title,description,genres,tags,year,external_id\n"


def _refused(atlas, source, message):
    with pytest.raises(InvalidInput) as raised:
        import_catalog(atlas.dispatcher, source)
    assert raised.value.message == message
    assert _count(atlas, media) == 0 and _count(atlas, media_tags) == 0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "Deep\x1bHarbour,,,,2001,",
            "column 'title' contains control characters (a title is one line)",
        ),
        (
            '"Deep\nHarbour",,,,2001,',
            "column 'title' contains control characters (a title is one line)",
        ),
        ("Deep Harbour,A wreck\x00.,,,2001,", "column 'description' contains control characters"),
        ("Deep Harbour,,Drama\x07,,2001,", "tag 'Drama\\x07' contains control characters"),
        ("Deep Harbour,,,ocean\x7f,2001,", "tag 'ocean\\x7f' contains control characters"),
        ("Deep Harbour,,,,2001,tmdb:\x011", "column 'external_id' contains control characters"),
    ],
)
def test_control_characters_are_refused_with_the_line(atlas, tmp_path, row, message):
    source = tmp_path / "films.csv"
    source.write_text(HEADER + "Night Market,Food stalls.,,,2019,\n" + row + "\n")
    _refused(atlas, source, f"films.csv:3: {message}")


def test_texts_keep_line_breaks_tabs_and_invisible_format_characters(atlas, tmp_path):
    source = tmp_path / "films.csv"
    source.write_text(
        HEADER + 'Deep  Harbour,"Two divers\xad,\r\n\tone wreck.",,,2001,\n', newline=""
    )
    [media_id] = import_catalog(atlas.dispatcher, source).created
    record = media_detail(atlas.engine, media_id).media
    assert record.title == "Deep  Harbour"  # as written: later imports match by it
    assert record.description == "Two divers\xad,\n\tone wreck."


def test_tag_counts_are_limited_as_on_the_command_line(atlas, tmp_path):
    source = tmp_path / "films.jsonl"
    hundred = [f"tag {n}" for n in range(100)]
    source.write_text(json.dumps({"title": "Many", "tags": hundred, "genres": hundred}) + "\n")
    [media_id] = import_catalog(atlas.dispatcher, source).created
    assert len(media_detail(atlas.engine, media_id).tags) == 100  # genres and tags: the same
    with atlas.engine.begin() as connection:
        connection.execute(media_tags.delete())
        connection.execute(media.delete())

    source.write_text(
        json.dumps({"title": "Fine"})
        + "\n"
        + json.dumps({"title": "Too many", "tags": [f"tag {n}" for n in range(10_000)]})
        + "\n"
    )
    _refused(atlas, source, "films.jsonl:2: column 'tags' names 10,000 tags; the limit is 100")
    source.write_text(json.dumps({"title": "X", "genres": ",".join([*hundred, "one more"])}))
    _refused(atlas, source, "films.jsonl:1: column 'genres' names 101 tags; the limit is 100")


def test_an_unterminated_quote_is_reported_where_it_opened(atlas, tmp_path, cli):
    source = tmp_path / "films.csv"
    source.write_text(
        HEADER
        + '"Deep Harbour","Divers\nfind a wreck.",Drama,,2001,tmdb:1\n'  # lines 2-3: fine
        + 'Night Market,"Food stalls at night.,Documentary,,2019,tmdb:2\n'  # line 4
        + "Red Planet,Settlers on Mars.,Science Fiction,,2030,tmdb:3\n"
        + "Cold Case,A detective.,Crime,,1999,tmdb:4\n"
    )
    message = (
        "films.csv:4: a quote opened on this line is never closed; the field runs on to "
        "the end of the file (line 6)"
    )
    _refused(atlas, source, message)
    result = cli("media-ingest", "--catalog", str(source))
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"atlas: {message}\n")


def test_a_quote_that_swallows_rows_until_another_quote_is_reported(atlas, tmp_path):
    source = tmp_path / "films.csv"
    source.write_text(
        HEADER
        + 'Night Market,"Food stalls at night.,Documentary,,2019,tmdb:2\n'  # line 2
        + "Red Planet,Settlers on Mars.,Science Fiction,,2030,tmdb:3\n"
        + 'Cold Case,"A detective." doubts,Crime,,1999,tmdb:4\n'
    )
    _refused(
        atlas,
        source,
        "films.csv:2: a quote opened on this line closes only on line 4, followed by more "
        "text; is a quote missing?",
    )
    source.write_text(HEADER + 'Cold Case,"A "detective" doubts",Crime,,1999,tmdb:4\n')
    _refused(
        atlas,
        source,
        "films.csv:2: text follows a closing quote (a quote inside a quoted field is written "
        'twice: "")',
    )


def test_a_row_with_more_fields_than_the_header_is_refused(atlas, tmp_path):
    source = tmp_path / "films.csv"
    source.write_text(HEADER + "Deep Harbour,Divers, a wreck,Drama,,2001,tmdb:1\n")
    _refused(
        atlas,
        source,
        "films.csv:2: 7 fields, but the header names 6; is a comma or a quote out of place?",
    )


def test_an_external_id_twice_in_one_file_names_both_lines(atlas, tmp_path, cli):
    source = tmp_path / "films.csv"
    source.write_text(
        HEADER
        + "Deep Harbour,,,,2001,tmdb:1\n"
        + 'Night Market,"Two\nlines",,,2019,tmdb:2\n'
        + "Deep Harbour (director's cut),,,,2001,tmdb:1\n"
    )
    message = (
        "films.csv:5: external_id 'tmdb:1' is already used at films.csv:2; each record of a "
        "catalogue needs its own"
    )
    _refused(atlas, source, message)
    result = cli("media-ingest", "--catalog", str(source))
    assert (result.exit_code, result.stderr) == (2, f"atlas: {message}\n")

    lines = tmp_path / "films.jsonl"
    lines.write_text(
        json.dumps({"title": "A", "external_id": "x"})
        + "\n\n"
        + json.dumps({"title": "B", "external_id": "x"})
        + "\n"
    )
    _refused(
        atlas,
        lines,
        "films.jsonl:3: external_id 'x' is already used at films.jsonl:1; each record of a "
        "catalogue needs its own",
    )
