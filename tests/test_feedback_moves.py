"""``atlas media move`` with real files, and file organisation rules that move files."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from _feedback import feedback_rows
from atlas.db.tables import media, media_sidecars, rule_applications
from atlas.feedback import move_media, run_feedback_loop, undo_application
from atlas.media import ingest_paths
from atlas.media.tags import Tag, upsert_tags

pytestmark = [pytest.mark.slow, pytest.mark.small_feedback]

_PATTERNS = ("testsrc2", "testsrc", "smptebars", "rgbtestsrc")


@pytest.fixture
def library(atlas, media_maker, tmp_path):
    """A library folder with four distinct real videos (the first with a subtitle sidecar)."""
    root = tmp_path / "lib"
    for n, pattern in enumerate(_PATTERNS):
        media_maker.copy(media_maker.video(f"v{n}.mp4", pattern=pattern), root / f"clip{n}.mp4")
    (root / "clip0.en.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    (root / "Horror").mkdir()
    report = ingest_paths(atlas.dispatcher, [root])
    assert report.summary() == {"new": 4}
    ids = {item.path.rsplit("/", 1)[-1]: item.media_id for item in report.items}
    return root, [ids[f"clip{n}.mp4"] for n in range(4)]


def _path(atlas, media_id):
    with atlas.engine.connect() as connection:
        return connection.scalar(select(media.c.path).where(media.c.id == media_id))


def test_move_takes_sidecars_along_and_is_recorded_as_feedback(atlas, cli, library):
    root, ids = library
    result = cli("media", "move", str(ids[0]), str(root / "Horror"))
    assert result.exit_code == 0, result.output
    target = root / "Horror" / "clip0.mp4"
    assert result.stdout.strip() == (
        f"moved media {ids[0]}: {root / 'clip0.mp4'} -> {target} (and 1 sidecar file(s))"
    )
    assert target.is_file() and not (root / "clip0.mp4").exists()
    assert (root / "Horror" / "clip0.en.srt").is_file()
    assert _path(atlas, ids[0]) == str(target)
    with atlas.engine.connect() as connection:
        sidecars = connection.execute(select(media_sidecars.c.path)).scalars().all()
    assert sidecars == [str(root / "Horror" / "clip0.en.srt")]
    (row,) = feedback_rows(atlas.engine, ids[0])
    assert (row["feedback_type"], row["source"]) == ("file_move", "user")
    assert (row["original_value"], row["corrected_value"]) == (str(root / "clip0.mp4"), str(target))

    # A rename in place works too, and ingest then finds nothing new.
    renamed = cli("media", "move", str(ids[1]), str(root / "renamed.mp4"), "--json")
    assert json.loads(renamed.stdout)["target"] == str(root / "renamed.mp4")
    again = ingest_paths(atlas.dispatcher, [root], recursive=True)
    assert again.summary() == {"unchanged": 4}


@pytest.mark.parametrize(
    ("where", "code", "message"),
    [
        (
            "outside",
            2,
            "atlas: {outside} is outside the library; files move only within the "
            "folders given to media-ingest ({root})",
        ),
        ("existing", 4, "atlas: {root}/clip1.mp4 already exists; Atlas never overwrites a file"),
        (
            "sidecar",
            4,
            "atlas: {root}/Horror/clip0.en.srt already exists; Atlas never overwrites a file",
        ),
        ("extension", 2, "atlas: clip0.mkv: a move keeps the file's extension (.mp4)"),
        ("missing-folder", 3, "atlas: folder {root}/nope does not exist"),
        ("same", 2, "atlas: media {id} is already at {root}/clip0.mp4"),
    ],
)
def test_refused_moves_touch_nothing_and_record_nothing(
    atlas, cli, library, tmp_path, where, code, message
):
    root, ids = library
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "Horror" / "clip0.en.srt").touch() if where == "sidecar" else None
    destination = {
        "outside": outside,
        "existing": root / "clip1.mp4",
        "sidecar": root / "Horror",
        "extension": root / "clip0.mkv",
        "missing-folder": root / "nope" / "clip0.mp4",
        "same": root,
    }[where]
    result = cli("media", "move", str(ids[0]), str(destination))
    assert result.exit_code == code
    assert result.stderr.strip() == message.format(outside=outside, root=root, id=ids[0])
    assert (root / "clip0.mp4").is_file() and (root / "clip0.en.srt").is_file()
    assert _path(atlas, ids[0]) == str(root / "clip0.mp4")
    assert feedback_rows(atlas.engine) == []


def test_a_move_whose_database_write_fails_is_undone_on_disk(atlas, library, monkeypatch):
    root, ids = library

    def broken(*_args, **_kwargs):
        raise RuntimeError("the disk holding the database is full")

    monkeypatch.setattr("atlas.feedback.moves.judge_edit", broken)
    with pytest.raises(RuntimeError):
        move_media(atlas.engine, atlas.settings.feedback, ids[0], root / "Horror")
    assert (root / "clip0.mp4").is_file() and (root / "clip0.en.srt").is_file()
    assert not (root / "Horror" / "clip0.mp4").exists()
    assert _path(atlas, ids[0]) == str(root / "clip0.mp4")
    assert feedback_rows(atlas.engine) == []


def test_organisation_rules_suggest_then_move_and_can_be_undone(atlas, cli, library):
    root, ids = library
    with atlas.engine.begin() as connection:
        for media_id in ids:
            upsert_tags(connection, media_id, [Tag("horror", source="user")])
    for media_id in ids[:3]:
        move_media(atlas.engine, atlas.settings.feedback, media_id, root / "Horror")

    suggested = cli("run-feedback-loop")
    assert suggested.exit_code == 0, suggested.output
    assert "suggested moves (run with --move-files to move):" in suggested.stdout
    assert (
        f"media {ids[3]} 'clip3': move {root / 'clip3.mp4'} -> {root / 'Horror' / 'clip3.mp4'}"
        in suggested.stdout
    )
    assert (root / "clip3.mp4").is_file()

    moved = run_feedback_loop(atlas.engine, atlas.settings.feedback, mode="apply", move_files=True)
    (application,) = moved.applied.applications
    assert application.target == "path" and application.media_id == ids[3]
    assert (root / "Horror" / "clip3.mp4").is_file() and not (root / "clip3.mp4").exists()
    assert _path(atlas, ids[3]) == str(root / "Horror" / "clip3.mp4")

    undone = undo_application(atlas.engine, atlas.settings.feedback, application.id)
    assert undone.application.outcome == "reverted"
    assert (root / "clip3.mp4").is_file() and not (root / "Horror" / "clip3.mp4").exists()
    assert _path(atlas, ids[3]) == str(root / "clip3.mp4")
    # The user chose where it lives now: the rule leaves it there.
    again = run_feedback_loop(atlas.engine, atlas.settings.feedback, mode="apply", move_files=True)
    assert again.applied.applications == [] and again.applied.suggested_moves == []
    with atlas.engine.connect() as connection:
        assert connection.scalar(select(rule_applications.c.outcome)) == "reverted"
