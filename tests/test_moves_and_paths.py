"""Moves touch only files inside the library; paths users give are checked once;
a folder that cannot be listed is reported and the rest of an ingest goes on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select, update

from _feedback import feedback_rows
from atlas.db.tables import library_roots, media
from atlas.media import IngestReport, ingest_paths
from atlas.media.ingest import FileWalk, _mark_missing, remember_roots
from atlas.paths import MAX_PATH_BYTES

pytestmark = pytest.mark.slow


def _roots(atlas) -> list[str]:
    with atlas.engine.connect() as connection:
        return sorted(connection.scalars(select(library_roots.c.path)))


def _path(atlas, media_id: int) -> str | None:
    with atlas.engine.connect() as connection:
        return connection.scalar(select(media.c.path).where(media.c.id == media_id))


@pytest.fixture
def library(atlas, media_maker, tmp_path):
    """An ingested library folder with one real video; returns (folder, media id)."""
    root = tmp_path / "lib"
    media_maker.copy(media_maker.video("v.mp4"), root / "clip.mp4")
    (root / "Archive").mkdir()
    [item] = ingest_paths(atlas.dispatcher, [root]).items
    return root, item.media_id


def _import_catalogue(cli, tmp_path: Path, rows: list[dict[str, object]]) -> list[int]:
    catalogue = tmp_path / "catalogue.jsonl"
    catalogue.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = cli("media-ingest", "--catalog", str(catalogue), "--json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout)["created"])


# --- media move: the source must be inside the library too ---------------------------


def test_a_catalogue_path_outside_the_library_is_never_moved(atlas, cli, library, tmp_path):
    root, _ = library
    elsewhere = tmp_path / "srv" / "elsewhere"
    elsewhere.mkdir(parents=True)
    victim = elsewhere / "victim.conf"
    victim.write_text("secret = 1\n")
    [record] = _import_catalogue(cli, tmp_path, [{"title": "Victim", "path": str(victim)}])
    assert _path(atlas, record) == str(victim)  # recorded as given

    result = cli("media", "move", str(record), str(root))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"atlas: the file of media {record} ({victim}) is outside the library; Atlas moves "
        f"only files inside the folders given to media-ingest ({root})"
    )
    assert victim.read_text() == "secret = 1\n" and not (root / "victim.conf").exists()
    assert _path(atlas, record) == str(victim)
    assert feedback_rows(atlas.engine) == []


def test_a_symlink_in_the_library_to_a_file_outside_is_not_moved(atlas, cli, library, tmp_path):
    root, _ = library
    outside = tmp_path / "outside"
    outside.mkdir()
    real = outside / "real.mp4"
    real.write_bytes((root / "clip.mp4").read_bytes()[:-10] + b"0123456789")
    (root / "link.mp4").symlink_to(real)
    report = ingest_paths(atlas.dispatcher, [root])
    [linked] = [item for item in report.items if item.path.endswith("link.mp4")]
    assert linked.media_id is not None

    result = cli("media", "move", str(linked.media_id), str(root / "Archive"))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"atlas: the file of media {linked.media_id} ({real}) is outside the library; Atlas "
        f"moves only files inside the folders given to media-ingest ({root})"
    )
    assert (root / "link.mp4").is_symlink() and real.is_file()
    assert not (root / "Archive" / "link.mp4").exists()


def test_a_move_inside_the_library_still_works(atlas, cli, library):
    root, media_id = library
    result = cli("media", "move", str(media_id), str(root / "Archive"))
    assert result.exit_code == 0, result.output
    assert _path(atlas, media_id) == str(root / "Archive" / "clip.mp4")


def test_an_empty_or_impossible_destination_is_one_line(cli, library):
    root, media_id = library
    empty = cli("media", "move", str(media_id), "")
    assert (empty.exit_code, empty.stderr.strip()) == (2, "atlas: the destination is empty")
    too_long = "/".join(["d" * 200] * 25)
    result = cli("media", "move", str(media_id), too_long)
    assert result.exit_code == 2
    length = len(f"{os.getcwd()}/{too_long}")
    assert result.stderr.strip() == (
        f"atlas: the destination '{too_long[:40]}…{too_long[-20:]}' is {length:,} bytes long; "
        f"the file system allows {MAX_PATH_BYTES:,}"
    )
    assert (root / "clip.mp4").is_file()


# --- catalogue paths: normalised, and refused when no file system can hold them ----------


def test_catalogue_paths_are_recorded_absolute_with_links_followed(
    atlas, cli, tmp_path, monkeypatch
):
    real = tmp_path / "films"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    ids = _import_catalogue(
        cli,
        tmp_path,
        [
            {"title": "Home", "path": "~/films/a.mkv"},
            {"title": "Relative", "path": "link/../films/b.mkv"},
            {"title": "Linked", "path": str(tmp_path / "link" / "c.mkv")},
            {"title": "None", "path": ""},
        ],
    )
    assert [_path(atlas, media_id) for media_id in ids] == [
        str(real / "a.mkv"),
        str(real / "b.mkv"),
        str(real / "c.mkv"),
        None,  # an empty cell: a record without a file
    ]


def test_a_catalogue_path_too_long_stops_the_import_with_its_line(atlas, cli, tmp_path):
    catalogue = tmp_path / "catalogue.jsonl"
    too_long = "/" + "/".join(["d" * 200] * 25)
    catalogue.write_text(
        json.dumps({"title": "Fine"}) + "\n" + json.dumps({"title": "Bad", "path": too_long}) + "\n"
    )
    result = cli("media-ingest", "--catalog", str(catalogue))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"atlas: catalogue.jsonl:2: the path '{too_long[:40]}…{too_long[-20:]}' is "
        f"{len(too_long):,} bytes long; the file system allows {MAX_PATH_BYTES:,}"
    )
    with atlas.engine.connect() as connection:
        assert connection.scalars(select(media.c.id)).all() == []


# --- library roots: only where media was really ingested --------------------------------


def test_only_a_successful_ingest_adds_a_library_root(atlas, cli, tmp_path, media_maker):
    notes = tmp_path / "etc"
    notes.mkdir()
    (notes / "passwd").write_text("root:x:0:0\n")
    failed = cli("media-ingest", str(notes / "passwd"))
    assert failed.exit_code == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = cli("media-ingest", str(empty))
    assert (nothing.exit_code, nothing.stdout.strip()) == (0, "0 file(s): nothing to do")
    assert _roots(atlas) == []

    media_maker.copy(media_maker.video("v.mp4"), tmp_path / "films" / "one.mp4")
    done = cli("media-ingest", str(tmp_path / "films" / "one.mp4"))
    assert done.exit_code == 0, done.output
    assert _roots(atlas) == [str(tmp_path / "films")]


def test_an_empty_path_is_refused_and_adds_no_root(atlas, cli):
    result = cli("media-ingest", "")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        'atlas: an empty path ("") names no file or folder; give the files or folders to ingest'
    )
    catalogue = cli("media-ingest", "--catalog", "")
    assert catalogue.exit_code == 2
    assert catalogue.stderr.strip() == 'atlas: an empty path ("") names no catalogue file or folder'
    assert _roots(atlas) == []


def test_an_ingest_task_records_the_root_it_was_given(atlas, media_maker, tmp_path):
    film = media_maker.copy(media_maker.video("v.mp4"), tmp_path / "queued" / "film.mp4")
    outcome = atlas.dispatcher.submit(
        "ingest", {"path": str(film), "force": False, "root": str(film.parent)}
    )
    assert outcome.ok, outcome.error
    assert _roots(atlas) == [str(film.parent)]
    remember_roots(atlas.engine, [film.parent, film.parent])  # idempotent
    assert _roots(atlas) == [str(film.parent)]


# --- a folder that cannot be listed ---------------------------------------------------


def _too_deep(parent: Path, media: bytes) -> Path:
    """Nested folders whose path is longer than the OS can look up, with a video at the bottom.

    Made through directory descriptors, so each step is short; listing the
    deepest folders by name fails with ENAMETOOLONG, even for root.
    """
    name = "d" * 250
    fd = os.open(parent, os.O_RDONLY)
    path = parent
    try:
        while len(os.fsencode(path)) <= MAX_PATH_BYTES + 300:
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, path = inner, path / name
        out = os.open("lost.mp4", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, media)
        os.close(out)
    finally:
        os.close(fd)
    return path


def _first_unlistable(top: Path) -> Path:
    path = top
    while len(os.fsencode(path / ("d" * 250))) <= MAX_PATH_BYTES:
        path = path / ("d" * 250)
    return path / ("d" * 250)


@pytest.mark.parametrize("how", ["path-too-long", "permissions"])
def test_an_unlistable_subfolder_is_reported_and_the_rest_is_ingested(
    atlas, cli, media_maker, tmp_path, how
):
    root = tmp_path / "lib"
    video = media_maker.video("v.mp4")
    media_maker.copy(video, root / "a" / "one.mp4")
    media_maker.copy(media_maker.video("w.mp4", pattern="smptebars"), root / "z" / "two.mp4")
    if how == "permissions":
        if os.geteuid() == 0:
            pytest.skip("root reads a folder whatever its mode; path-too-long covers root")
        locked = root / "m"
        media_maker.copy(video, locked / "three.mp4")
        locked.chmod(0)
        unreadable, reason = locked, "Permission denied"
    else:
        _too_deep(root / "a", video.read_bytes())
        unreadable, reason = _first_unlistable(root / "a"), "File name too long"
    try:
        result = cli("media-ingest", str(root), "--recursive")
    finally:
        if how == "permissions":
            (root / "m").chmod(0o755)
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == f"atlas: {unreadable}: cannot list the folder ({reason}); skipped"
    )
    assert result.stdout.splitlines()[0] == "2 file(s): 2 new"
    assert _roots(atlas) == [str(root)]


def test_files_under_a_folder_that_cannot_be_listed_are_not_marked_missing(
    atlas, media_maker, tmp_path
):
    root = tmp_path / "lib"
    media_maker.copy(media_maker.video("v.mp4"), root / "sub" / "one.mp4")
    [item] = ingest_paths(atlas.dispatcher, [root], recursive=True).items
    # The file is not listed this time (its folder could not be read) nor stat-able.
    with atlas.engine.begin() as connection:
        connection.execute(
            update(media)
            .where(media.c.id == item.media_id)
            .values(path=str(root / "sub" / "gone.mp4"))
        )
    walk = FileWalk(folders=[root], unreadable=[(root / "sub", "cannot list the folder")])
    report = IngestReport()
    _mark_missing(atlas.engine, walk, recursive=True, report=report)
    assert report.missing == 0
    readable = FileWalk(folders=[root])
    _mark_missing(atlas.engine, readable, recursive=True, report=report)
    assert report.missing == 1  # without the unreadable folder, the file is known to be gone
