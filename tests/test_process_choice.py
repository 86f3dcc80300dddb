"""Whether new items go on to transcription, tagging and embedding: the command's choice
(``--process/--no-process``, else the ``auto_process`` setting) travels with its tasks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from atlas.app import open_atlas
from atlas.db.tables import tasks
from atlas.media import ingest_paths
from conftest import requires_ffmpeg

CSV = "title,genres,external_id\nDeep Harbour,Drama,tmdb:1\n"


def _tasks(engine) -> list[tuple[str, dict]]:
    with engine.connect() as connection:
        rows = connection.execute(select(tasks.c.task_type, tasks.c.params).order_by(tasks.c.id))
        return [(row.task_type, dict(row.params)) for row in rows]


@pytest.mark.parametrize(
    ("env", "flags"),
    [("false", []), ("true", ["--no-process"])],
    ids=["setting-off", "flag-off"],
)
def test_catalogue_import_obeys_the_setting_unless_a_flag_is_given(
    cli, atlas, tmp_path, env, flags
):
    source = tmp_path / "films.csv"
    source.write_text(CSV)
    result = cli("media-ingest", "--catalog", str(source), *flags, env={"ATLAS_AUTO_PROCESS": env})
    assert result.exit_code == 0, result.output
    # Nothing after the import: no transcription, tagging or embedding scheduled.
    assert [(kind, params["process"]) for kind, params in _tasks(atlas.engine)] == [
        ("catalog-import", False)
    ]


@requires_ffmpeg
@pytest.mark.slow
def test_workers_obey_the_processing_choice_of_the_command_whatever_their_own(
    make_settings, tmp_path, media_maker
):
    queue = f"sqlite:///{tmp_path / 'queue.db'}"
    library = tmp_path / "library"
    media_maker.copy(media_maker.video("film.mp4", seconds=1), library / "film.mp4")
    media_maker.copy(media_maker.audio("talk.mp3", seconds=1), library / "talk.mp3")
    command = open_atlas(make_settings(queue_url=queue, auto_process=False))
    worker = open_atlas(make_settings(queue_url=queue, auto_process=True))
    try:
        [item] = ingest_paths(command.dispatcher, [library / "film.mp4"], wait=False).items
        assert item.status == "queued"
        outcome = worker.dispatcher.execute(item.task_id)  # what `atlas worker` runs
        assert outcome is not None and outcome.ok and outcome.result["action"] == "new"
        assert [kind for kind, _params in _tasks(command.engine)] == ["ingest"]

        # Work queued with processing on goes on down the chain in the same worker.
        [item] = ingest_paths(
            command.dispatcher, [library / "talk.mp3"], wait=False, process=True
        ).items
        outcome = worker.dispatcher.execute(item.task_id)
        assert outcome is not None and outcome.ok
        kinds = [kind for kind, _params in _tasks(command.engine)]
        assert kinds == ["ingest", "ingest", "transcribe"]

        # And a worker with auto_process off carries a chain on all the same.
        with command.engine.connect() as connection:
            transcribe_id = connection.scalar(
                select(tasks.c.id).where(tasks.c.task_type == "transcribe")
            )
        outcome = command.dispatcher.execute(transcribe_id)
        assert outcome is not None, "the transcribe task was not run"
        kinds = [kind for kind, _params in _tasks(command.engine)]
        assert kinds == ["ingest", "ingest", "transcribe", "tag"]
    finally:
        command.close()
        worker.close()
