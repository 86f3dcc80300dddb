"""Ingest of real ffmpeg-made files: facts, fingerprints, sidecars, moves, changes, errors."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from sqlalchemy import func, select, update

from atlas.db.tables import library_roots, media, task_logs, user_feedback
from atlas.errors import NotFound
from atlas.media import get_media, ingest_paths, media_detail

pytestmark = pytest.mark.slow


def _count(atlas, table, *conditions):
    with atlas.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table).where(*conditions))


@pytest.fixture
def library(tmp_path, media_maker):
    folder = tmp_path / "library"
    media_maker.copy(
        media_maker.video("film.mp4", seconds=2, title="Night Train"), folder / "film.mp4"
    )
    media_maker.copy(media_maker.audio("talk.mp3", seconds=1.5), folder / "podcasts" / "talk.mp3")
    media_maker.copy(media_maker.image("cover.png"), folder / "cover.png")
    (folder / "notes.txt").write_text("not media")
    return folder


def test_ingest_reads_facts_of_video_audio_and_image(atlas, library):
    report = ingest_paths(atlas.dispatcher, [library], recursive=True)
    assert report.summary() == {"new": 3}
    by_name = {
        os.path.basename(item.path): get_media(atlas.engine, item.media_id) for item in report.items
    }

    film = by_name["film.mp4"]
    assert film.media_type == "video" and film.has_video and film.has_audio
    assert film.video_codec == "h264" and film.audio_codec == "aac"
    assert (film.width, film.height) == (160, 90)
    assert film.duration_s == pytest.approx(2.0, abs=0.2)
    assert film.title == "Night Train"  # from the container tags
    assert film.content_hash.startswith("b2w1:")
    assert film.size_bytes == (library / "film.mp4").stat().st_size

    talk = by_name["talk.mp3"]
    assert talk.media_type == "audio" and talk.has_audio and not talk.has_video
    assert talk.audio_codec == "mp3" and talk.title == "talk"

    cover = by_name["cover.png"]
    assert cover.media_type == "image" and cover.duration_s is None
    assert _count(atlas, task_logs, task_logs.c.status == "completed") == 3


def test_folders_are_read_one_level_unless_recursive(atlas, library):
    report = ingest_paths(atlas.dispatcher, [library])
    assert sorted(os.path.basename(item.path) for item in report.items) == ["cover.png", "film.mp4"]
    with atlas.engine.connect() as connection:
        assert connection.scalars(select(library_roots.c.path)).all() == [str(library)]


def test_reingesting_unchanged_files_does_no_work(atlas, library):
    ingest_paths(atlas.dispatcher, [library], recursive=True)
    logs_before = _count(atlas, task_logs)
    report = ingest_paths(atlas.dispatcher, [library], recursive=True)
    assert report.summary() == {"unchanged": 3}
    assert all(item.task_id is None for item in report.items)
    assert _count(atlas, task_logs) == logs_before


def test_a_moved_file_keeps_its_media_id_and_is_recorded_as_a_move(atlas, library):
    [first] = ingest_paths(atlas.dispatcher, [library / "film.mp4"]).items
    (library / "archive").mkdir()
    shutil.move(library / "film.mp4", library / "archive" / "renamed.mp4")
    report = ingest_paths(atlas.dispatcher, [library], recursive=True)
    moved = [item for item in report.items if item.status == "moved"]
    assert [item.media_id for item in moved] == [first.media_id]
    assert get_media(atlas.engine, first.media_id).path == str(library / "archive" / "renamed.mp4")
    with atlas.engine.connect() as connection:
        feedback = connection.execute(select(user_feedback)).one()
    assert feedback.feedback_type == "file_move" and feedback.media_id == first.media_id
    assert feedback.original_value == str(library / "film.mp4")


def test_a_changed_file_is_reprobed_but_user_edits_survive(atlas, library, media_maker):
    [first] = ingest_paths(atlas.dispatcher, [library / "film.mp4"]).items
    with atlas.engine.begin() as connection:
        connection.execute(update(media).values(title="My own title"))
    old = get_media(atlas.engine, first.media_id)
    media_maker.copy(media_maker.video("longer.mp4", seconds=4), library / "film.mp4")
    [second] = ingest_paths(atlas.dispatcher, [library / "film.mp4"]).items
    new = get_media(atlas.engine, first.media_id)
    assert second.status == "updated" and second.media_id == first.media_id
    assert new.content_hash != old.content_hash
    assert new.duration_s == pytest.approx(4.0, abs=0.3)
    assert new.title == "My own title"


def test_same_content_at_a_second_path_is_marked_duplicate(atlas, library):
    shutil.copyfile(library / "film.mp4", library / "film-copy.mp4")
    report = ingest_paths(atlas.dispatcher, [library])
    first, second = (item for item in report.items if "film" in item.path)
    assert (first.status, second.status) == ("new", "duplicate")
    assert get_media(atlas.engine, second.media_id).duplicate_of == first.media_id


def test_sidecars_are_recorded_and_nfo_metadata_is_used(atlas, library):
    (library / "film.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    (library / "film.en.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n")
    (library / "film.nfo").write_text(
        "<movie><title>Night Train to Lisbon</title><plot>A long journey.</plot>"
        "<genre>Drama</genre><genre>Mystery</genre><tag>trains</tag><year>2013</year>"
        "<uniqueid type='tmdb' default='true'>4242</uniqueid></movie>"
    )
    (library / "other.srt").write_text("not ours")
    [item] = ingest_paths(atlas.dispatcher, [library / "film.mp4"]).items
    detail = media_detail(atlas.engine, item.media_id)
    assert sorted((s["format"], s["language"]) for s in detail.sidecars) == [
        ("nfo", None),
        ("srt", None),
        ("vtt", "en"),
    ]
    assert detail.media.title == "Night Train to Lisbon"
    assert (detail.media.genre, detail.media.year) == ("Drama", 2013)
    assert detail.media.description == "A long journey."
    assert detail.media.external_id == "tmdb:4242"
    assert {(t.tag, t.kind, t.source) for t in detail.tags} == {
        ("Drama", "genre", "user"),
        ("Mystery", "genre", "user"),
        ("trains", "keyword", "user"),
    }


def test_a_vanished_file_is_marked_missing_and_keeps_its_data(atlas, library):
    ingest_paths(atlas.dispatcher, [library], recursive=True)
    (library / "podcasts" / "talk.mp3").unlink()
    report = ingest_paths(atlas.dispatcher, [library], recursive=True)
    assert report.missing == 1
    assert _count(atlas, media, media.c.missing.is_(True)) == 1
    assert _count(atlas, media) == 3


def test_a_corrupt_file_is_one_error_task_and_the_rest_continue(atlas, library):
    (library / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 500)
    report = ingest_paths(atlas.dispatcher, [library], recursive=True)
    assert report.summary() == {"new": 3, "error": 1}
    [failed] = report.failed
    assert failed.error == (
        f"{library / 'broken.mp4'}: not a readable media file "
        "(Invalid data found when processing input)"
    )
    errors = _count(atlas, task_logs, task_logs.c.status == "error")
    assert errors == 1
    assert _count(atlas, media) == 3


def test_missing_path_is_refused_before_anything_happens(atlas, library):
    with pytest.raises(NotFound, match="no-such-folder: no such file or folder"):
        ingest_paths(atlas.dispatcher, [library, library / "no-such-folder"])
    assert _count(atlas, media) == 0 and _count(atlas, task_logs) == 0


def test_two_hundred_files_log_one_completed_row_each_and_a_rerun_does_nothing(
    atlas, tmp_path, media_maker
):
    base = media_maker.video("base.mp4", seconds=1).read_bytes()
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(200):
        # Trailing bytes make each file's content distinct; ffprobe ignores them.
        (folder / f"clip{index:03d}.mp4").write_bytes(base + index.to_bytes(4, "big") * 8)
    first = ingest_paths(atlas.dispatcher, [folder])
    assert first.summary() == {"new": 200}
    assert _count(atlas, task_logs, task_logs.c.status == "completed") == 200
    assert _count(atlas, task_logs) == 200
    second = ingest_paths(atlas.dispatcher, [folder])
    assert second.summary() == {"unchanged": 200}
    assert _count(atlas, task_logs) == 200


# --- the command ----------------------------------------------------------------


def test_media_ingest_cli_prints_ids_and_a_summary(cli, library):
    result = cli("media-ingest", str(library), "--recursive")
    assert result.exit_code == 0, result.output
    assert "3 file(s): 3 new" in result.stdout
    # Files are ingested concurrently: ids go in the order they finish, listed in walk order.
    (ids,) = [line for line in result.stdout.splitlines() if line.startswith("media ids: ")]
    assert sorted(ids.removeprefix("media ids: ").split()) == ["1", "2", "3"]


def test_media_ingest_cli_exits_1_with_one_line_per_failure(cli, library):
    (library / "broken.mkv").write_bytes(b"\x1aE\xdf\xa3 nonsense")
    result = cli("media-ingest", str(library))
    assert result.exit_code == 1
    assert "2 new, 1 error" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("atlas:")]
    assert errors == [
        f"atlas: {library / 'broken.mkv'}: not a readable media file "
        "(Invalid data found when processing input)"
    ]


def test_non_media_file_given_explicitly_is_an_error(cli, library):
    result = cli("media-ingest", str(library / "notes.txt"), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["summary"] == {"error": 1}
    assert result.stderr.strip() == (
        f"atlas: {library / 'notes.txt'}: not a readable media "
        "file (Invalid data found when processing input)"
    )


def test_missing_path_cli_is_one_line_and_exit_3(cli, tmp_path):
    result = cli("media-ingest", str(tmp_path / "nowhere"))
    assert result.exit_code == 3
    assert result.stderr == f"atlas: {tmp_path / 'nowhere'}: no such file or folder\n"


def test_a_locked_database_is_one_clear_line(cli, home, library, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite locking")
    import sqlite3

    cli("migrate")
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        (home / "atlas.toml").write_text("busy_timeout_s = 0.2\n")
        result = cli("media-ingest", str(library))
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 5
    assert result.stderr.startswith("atlas: the database sqlite:///")
    assert result.stderr.endswith("is locked by another process; try again when it is done\n")


def test_media_list_and_show(cli, library):
    cli("media-ingest", str(library))
    listed = cli("media", "list", "--json")
    assert listed.exit_code == 0
    data = json.loads(listed.stdout)
    assert data["total"] == 2
    shown = cli("media", "show", str(data["items"][0]["id"]))
    assert shown.exit_code == 0 and "fingerprint" in shown.stdout
    missing = cli("media", "show", "99")
    assert (missing.exit_code, missing.stderr) == (3, "atlas: no media with id 99\n")
