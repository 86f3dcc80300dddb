"""Bad input ends in one clear line with its exit code; ``internal error`` is for bugs.

Exit codes: 2 invalid input, 3 not found, 4 conflict, 5 unavailable.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from atlas.config import load_settings
from atlas.db import MAX_ID
from atlas.embeddings import embed_media, similar_media
from atlas.errors import NotFound
from atlas.feedback import (
    edit_metadata,
    list_applications,
    move_media,
    set_rule_enabled,
    track_tag_edits,
    undo_application,
)
from atlas.media import media_detail
from atlas.tagging.edits import list_media_tags
from atlas.tasks.history import task_detail
from atlas.transcription import transcribe_library

BEYOND = str(2**63)  # no 64-bit integer; SQLite refused it with OverflowError
RANGE = f"is out of range; Atlas takes whole numbers up to ±{MAX_ID}"


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output
    return lines[0]


# --- ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["media", "show", BEYOND], f"MEDIA_ID: {BEYOND} {RANGE}"),
        (["media", "move", BEYOND, "/tmp"], f"MEDIA_ID: {BEYOND} {RANGE}"),
        (["media", "edit", BEYOND, "--title", "x"], f"MEDIA_ID: {BEYOND} {RANGE}"),
        (["tasks", "show", BEYOND], f"TASK_ID: {BEYOND} {RANGE}"),
        (["tasks", "cancel", BEYOND], f"TASK_ID: {BEYOND} {RANGE}"),
        (["rules", "show", BEYOND], f"RULE_ID: {BEYOND} {RANGE}"),
        (["rules", "enable", BEYOND], f"RULE_ID: {BEYOND} {RANGE}"),
        (["rules", "disable", BEYOND], f"RULE_ID: {BEYOND} {RANGE}"),
        (["rules", "undo", BEYOND], f"APPLICATION_ID: {BEYOND} {RANGE}"),
        (["rules", "applications", "--rule", BEYOND], f"--rule: {BEYOND} {RANGE}"),
        (["rules", "applications", "--media", BEYOND], f"--media: {BEYOND} {RANGE}"),
        (["track-tag-edits", "--media", BEYOND, "--tags", "x"], f"--media: {BEYOND} {RANGE}"),
        (["search-similar", "--media", BEYOND], f"--media: {BEYOND} {RANGE}"),
        (["smart-transcribe", "--media", BEYOND], f"--media: {BEYOND} {RANGE}"),
        (["embed-media", "--media", BEYOND], f"--media: {BEYOND} {RANGE}"),
        (["media", "list", "--offset", BEYOND], f"--offset: {BEYOND} {RANGE}"),
        (["tasks", "list", "--limit", BEYOND], f"--limit: {BEYOND} {RANGE}"),
    ],
)
def test_a_number_beyond_the_database_is_one_line(cli, args, line):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert _one_line(result) == f"atlas: {line}"


@pytest.mark.parametrize("args", [["list"], ["add", "--", "{id}", "x"], ["remove", "{id}", "x"]])
@pytest.mark.parametrize("media_id", [BEYOND, str(MAX_ID + 1), "0"])
def test_a_target_that_is_no_id_any_row_can_have_is_not_found(cli, args, media_id):
    given = [arg.replace("{id}", media_id) for arg in args]
    if given == ["list"]:
        given.append(media_id)
    result = cli("media-tags", *given)
    assert result.exit_code == 3, result.output
    assert _one_line(result) == f"atlas: no media with id {media_id}"


@pytest.mark.parametrize("media_id", [2**63, MAX_ID + 1, 0, -1])
def test_services_answer_not_found_for_an_id_no_row_can_have(atlas, media_id):
    engine, settings = atlas.engine, atlas.settings
    calls = {
        "media": lambda: media_detail(engine, media_id),
        "move": lambda: move_media(engine, settings.feedback, media_id, "/tmp"),
        "edit": lambda: edit_metadata(engine, settings.feedback, media_id, title="x"),
        "tags": lambda: track_tag_edits(engine, settings.feedback, media_id, tags="x"),
        "list-tags": lambda: list_media_tags(engine, str(media_id)),
        "task": lambda: task_detail(engine, media_id),
        "rule": lambda: set_rule_enabled(engine, media_id, False),
        "undo": lambda: undo_application(engine, settings.feedback, media_id),
        "applications": lambda: list_applications(engine, media_id=media_id),
        "similar": lambda: similar_media(settings, engine, media_id),
        "transcribe": lambda: transcribe_library(atlas.dispatcher, media_ids=[media_id]),
        "embed": lambda: embed_media(atlas.dispatcher, media_ids=[media_id]),
    }
    for name, call in calls.items():
        if name == "list-tags" and media_id < 0:
            continue  # "-1" is a path, not an id
        with pytest.raises(NotFound) as caught:
            call()
        what = {"task": "task", "rule": "rule", "undo": "rule application"}.get(name, "media")
        assert caught.value.message.startswith(f"no {what} with id {media_id}"), name


# --- the database, the settings, the data dir ------------------------------------------


def test_a_corrupt_database_file_is_one_line(cli, tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" + os.urandom(4096))
    result = cli("media", "list", env={"ATLAS_DATABASE_URL": f"sqlite:///{broken}"})
    assert result.exit_code == 5
    assert _one_line(result) == (
        f"atlas: the database sqlite:///{broken} is damaged or is not an Atlas database "
        "(file is not a database); restore it from a backup, or set database_url to another "
        "database"
    )


def test_a_database_stamped_with_an_unknown_revision_is_one_line(atlas, cli, database_url):
    with atlas.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    result = cli("media", "list")
    assert result.exit_code == 4
    line = _one_line(result)
    assert line.startswith("atlas: the database ")
    assert line.endswith(
        "is at schema revision 'ffff', which this version of Atlas does not know (its newest "
        f"is '{_head()}'); it was made by a newer Atlas or another program: upgrade Atlas, or "
        "set database_url to another database"
    )


def _head() -> str:
    from atlas.db.migrate import _script

    head = _script().get_current_head()
    assert head is not None
    return head


def test_a_binary_settings_file_is_one_line(cli, home):
    (home / "atlas.toml").write_bytes(b"\x00\xff\xfe\x01binary" + bytes(range(256)))
    result = cli("media", "list")
    assert result.exit_code == 2
    assert _one_line(result) == (
        f"atlas: config file {home / 'atlas.toml'} is not valid TOML: not UTF-8 text"
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"ATLAS_DATABASE_URL": "foo://x"},
            "database URL 'foo://x': Atlas runs on SQLite (sqlite:///PATH) or PostgreSQL "
            "(postgresql://HOST/DB), not 'foo'",
        ),
        (
            {"ATLAS_BUSY_TIMEOUT_S": "inf"},
            "invalid setting busy_timeout_s (from env ATLAS_BUSY_TIMEOUT_S): "
            "Input should be a finite number",
        ),
        (
            {"ATLAS_BUSY_TIMEOUT_S": "nan"},
            "invalid setting busy_timeout_s (from env ATLAS_BUSY_TIMEOUT_S): "
            "Input should be a finite number",
        ),
        (
            {"ATLAS_BUSY_TIMEOUT_S": "1e300"},
            "invalid setting busy_timeout_s (from env ATLAS_BUSY_TIMEOUT_S): "
            "Value error, must be at most 86400 (a day)",
        ),
        (
            {"ATLAS_EMBEDDING__DEVICE": "tpu"},
            "invalid setting embedding.device (from env ATLAS_EMBEDDING__DEVICE): Value error, "
            "unknown device 'tpu'; use cpu, cuda, cuda:N, mps or xpu (or leave it unset)",
        ),
        (
            {"ATLAS_TASKS__NOSUCH__RETRIES": "1"},
            "unknown task type 'nosuch' in the settings (tasks.nosuch); the task types are: "
            "{known}",
        ),
    ],
)
def test_bad_settings_are_one_line(cli, env, line):
    from atlas.tasks import registered_task_types

    result = cli("media", "list", env=env)
    assert result.exit_code == 2
    known = ", ".join(sorted(task.name for task in registered_task_types()))
    assert _one_line(result) == "atlas: " + line.format(known=known)


def test_an_unknown_task_type_in_the_settings_file_lists_the_known_ones(cli, home):
    (home / "atlas.toml").write_text("[tasks.nosuch]\nretries = 3\n")
    result = cli("media", "list")
    assert result.exit_code == 2
    line = _one_line(result)
    assert line.startswith("atlas: unknown task type 'nosuch' in the settings (tasks.nosuch); ")
    assert "ingest" in line and "embed" in line and "transcribe" in line


def test_atlas_home_on_a_file_is_one_line(cli, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    result = cli("media", "list", env={"ATLAS_HOME": str(a_file)})
    assert result.exit_code == 2
    assert _one_line(result) == (
        f"atlas: the data dir (from env ATLAS_HOME) {a_file} is a file, not a folder"
    )
    below = cli("--home", str(a_file / "below"), "media", "list")
    assert below.exit_code == 2
    assert _one_line(below) == (
        f"atlas: {a_file / 'below'}: cannot be created as the data dir (Not a directory)"
    )


def test_paths_too_long_for_the_file_system_are_one_line(cli, tmp_path):
    deep = str(tmp_path / "/".join(["n" * 200] * 25))
    shown = f"'{deep[:40]}…{deep[-20:]}'"
    length = f"{len(deep):,}"
    cases = {
        ("media-ingest", deep): f"the path to ingest {shown} is {length} bytes long",
        ("media-ingest", "--catalog", deep): f"the catalogue {shown} is {length} bytes long",
        ("--home", deep, "media", "list"): (
            f"the data dir (from flag --home) {shown} is {length} bytes long"
        ),
        ("media-tags", "list", deep): f"the target {shown} is {length} bytes long",
    }
    for args, start in cases.items():
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert _one_line(result) == f"atlas: {start}; the file system allows 4,095", args


def test_a_name_longer_than_the_file_system_allows_is_one_line(cli, tmp_path):
    long_name = str(tmp_path / ("x" * 300))
    result = cli("media-ingest", long_name)
    assert result.exit_code == 2
    assert _one_line(result) == (
        f"atlas: the path to ingest '{long_name[:40]}…{long_name[-20:]}' has a name 300 bytes "
        "long; the file system allows 255"
    )


def test_control_characters_in_what_the_user_gave_stay_on_one_line(cli, tmp_path):
    odd = tmp_path / "two\nlines\x1b[31m"
    result = cli("media-ingest", str(odd))
    assert result.exit_code == 3
    assert _one_line(result) == f"atlas: {tmp_path}/two\\nlines\\x1b[31m: no such file or folder"


def test_a_nul_character_is_refused_before_any_command_runs(cli):
    result = cli("media", "edit", "1", "--title", "a\x00b")
    assert result.exit_code == 2
    assert _one_line(result) == "atlas: --title: contains a NUL character"


def test_a_damaged_queue_file_is_one_line(cli, tmp_path):
    queue = tmp_path / "queue.db"
    queue.write_bytes(os.urandom(4096))
    catalogue = tmp_path / "c.csv"
    catalogue.write_text("title\nOne\n")
    result = cli("--queue-url", f"sqlite:///{queue}", "media-ingest", "--catalog", str(catalogue))
    assert result.exit_code == 5
    assert _one_line(result) == (
        f"atlas: the task queue file {queue} cannot be used (file is not a database); "
        "point queue_url at another file, or move this one aside"
    )


def test_the_settings_refuse_inf_and_nan_everywhere(tmp_path):
    for key in ("chroma.timeout_s", "tagging.threshold", "feedback.half_life_days"):
        for value in ("inf", "nan"):
            with pytest.raises(Exception, match="finite number"):
                load_settings(home=tmp_path, overrides={key: value}, environ={})


# --- the vector store: the messages name the command that really repairs ------------------


@pytest.mark.slow
def test_a_damaged_vector_store_is_moved_aside_and_rebuilt(atlas, cli, embedded_library):
    from atlas.caches import clear_caches

    store = atlas.settings.chroma_path
    (store / "chroma.sqlite3").write_bytes(b"not a database" + os.urandom(8192))
    clear_caches("library")
    some_id = str(next(iter(embedded_library.values())))
    for args in (["embed-media", "--all", "--verify"], ["search-similar", "--media", some_id]):
        result = cli(*args)
        assert result.exit_code == 5, result.output
        line = _one_line(result)
        # Chroma words the SQLite error in more than one way; the code and the repair stand.
        assert line.startswith(f"atlas: the embedded vector store in {store} is damaged ("), line
        assert line.endswith(
            "(code: 26) file is not a database); rebuild the vector store from the database: "
            "atlas embed-media --all --force"
        ), line

    rebuilt = cli("embed-media", "--all", "--force")
    assert rebuilt.exit_code == 0, rebuilt.output
    [aside] = [p for p in store.parent.iterdir() if p.name.startswith("chroma.damaged-")]
    assert (aside / "chroma.sqlite3").read_bytes().startswith(b"not a database")  # kept
    assert rebuilt.stdout.splitlines()[0] == (
        f"the vector store was damaged: moved it to {aside} and built a new one from the database"
    )
    assert f"embedded {len(embedded_library)} item(s)" in rebuilt.stdout
    similar = cli("search-similar", "--media", some_id, "--json")
    assert similar.exit_code == 0, similar.output


@pytest.mark.slow
def test_a_missing_vector_names_the_check_that_restores_it(atlas, cli, embedded_library):
    from atlas.embeddings import get_store

    media_id = embedded_library["Orbit of Silence"]
    model = "sentence-transformers:all-MiniLM-L6-v2"
    get_store(atlas.settings).collection(model, 384, create=False).delete([media_id])
    result = cli("search-similar", "--media", str(media_id))
    assert result.exit_code == 3
    assert _one_line(result) == (
        f"atlas: media {media_id} is recorded as embedded, but its vector is missing from the "
        "vector store; check the vector store against the database: "
        "atlas embed-media --all --verify"
    )
    repaired = cli("embed-media", "--all", "--verify")
    assert repaired.exit_code == 0, repaired.output
    assert "1 missing vector(s) restored" in repaired.stdout
    assert cli("search-similar", "--media", str(media_id)).exit_code == 0
