"""Transcription with the real tiny.en model on real espeak-ng speech and ffmpeg media."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from atlas.app import open_atlas
from atlas.db.tables import media, task_logs, tasks, transcripts
from atlas.demo import build_library, load_items
from atlas.media import import_catalog, ingest_paths
from atlas.tasks import TaskCancelled
from atlas.tasks.registry import _REGISTRY, TaskType
from atlas.transcription import (
    BUNDLED_MODEL,
    ModelChoice,
    get_transcriber,
    select_media,
    transcribe_library,
    transcribe_media,
    transcription_analytics,
)
from atlas.transcription.models import bundled_model_path

pytestmark = pytest.mark.slow

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
OTHER = "Seven bright lanterns glow above the quiet harbour tonight."


@pytest.fixture(scope="session")
def whisper(media_maker):
    """The bundled tiny.en, loaded once for the whole session (the service reuses it)."""
    transcriber = get_transcriber(ModelChoice(BUNDLED_MODEL, bundled_model_path()), "cpu", "int8")
    transcriber.load()
    return transcriber


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True)


class Files:
    """Real media for these tests, made once per session."""

    def __init__(self, maker, folder: Path) -> None:
        self.maker = maker
        self.folder = folder

    def speech_mp3(self) -> Path:
        return self.maker.audio("speech.mp3", speech=SENTENCE)

    def speech_video(self) -> Path:
        return self.maker.video("speech.mp4", speech=SENTENCE)

    def _once(self, name: str, build) -> Path:
        path = self.folder / name
        if not path.exists():
            partial = path.with_name(f"partial-{name}")
            build(partial)
            partial.replace(path)
        return path

    def mute_video(self) -> Path:
        return self._once(
            "mute.mp4",
            lambda out: _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-t", "2",
                                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                                "-an", "-f", "mp4", str(out)),
        )  # fmt: skip

    def silence(self) -> Path:
        return self._once(
            "silence.wav",
            lambda out: _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "6",
                                "-f", "wav", str(out)),
        )  # fmt: skip

    def tone(self) -> Path:
        return self._once(
            "tone.m4a",
            lambda out: _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
                                "-t", "6", "-c:a", "aac", "-f", "ipod", str(out)),
        )  # fmt: skip

    def broken_mp3(self) -> Path:
        def build(out: Path) -> None:
            data = bytearray(self.speech_mp3().read_bytes())
            noise = random.Random(3)
            for index in range(2000, len(data)):
                data[index] = noise.randrange(256)
            out.write_bytes(bytes(data))

        return self._once("broken.mp3", build)

    def embedded_mkv(self) -> Path:
        def build(out: Path) -> None:
            srt = self.folder / "embedded-source.srt"
            srt.write_text(
                "1\n00:00:00,000 --> 00:00:02,000\nWords from the embedded stream.\n",
                encoding="utf-8",
            )
            _ffmpeg("-i", str(self.speech_video()), "-i", str(srt), "-map", "0", "-map", "1",
                    "-c", "copy", "-c:s", "srt", "-metadata:s:s:0", "language=eng",
                    "-f", "matroska", str(out))  # fmt: skip

        return self._once("embedded.mkv", build)


@pytest.fixture(scope="session")
def files(media_maker, tmp_path_factory) -> Files:
    return Files(media_maker, tmp_path_factory.mktemp("transcription-media"))


def _place(source: Path, folder: Path, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or source.name)
    shutil.copyfile(source, target)
    return target


def _ingest(atlas, *paths: Path) -> list[int]:
    """Ingest files; their media ids in the order given (ingest runs them concurrently)."""
    report = ingest_paths(atlas.dispatcher, list(paths))
    assert not report.failed, report.failed
    by_path = {item.path: item.media_id for item in report.items}
    return [by_path[str(path.resolve())] for path in paths]


def _row(atlas, media_id: int):
    with atlas.engine.connect() as connection:
        return connection.execute(
            select(transcripts).where(transcripts.c.media_id == media_id)
        ).first()


def _logs(atlas, task_type: str = "transcribe"):
    with atlas.engine.connect() as connection:
        return connection.execute(
            select(task_logs).where(task_logs.c.task_type == task_type).order_by(task_logs.c.id)
        ).all()


def _words(text: str) -> set[str]:
    return {word.strip(".,!?").lower() for word in text.split()}


def _heard(text: str, spoken: str, share: float = 0.7) -> bool:
    """Most words of what espeak-ng said are in the transcript (tiny.en is not perfect)."""
    expected = _words(spoken)
    return len(_words(text) & expected) >= share * len(expected)


def test_speech_is_transcribed_with_timed_segments_language_and_timing(
    atlas, whisper, files, tmp_path
):
    (media_id,) = _ingest(atlas, _place(files.speech_mp3(), tmp_path / "lib"))
    report = transcribe_library(atlas.dispatcher, media_ids=[media_id])

    assert report.summary() == {"transcribed": 1}
    row = _row(atlas, media_id)
    assert row.source == "whisper"
    assert row.model == BUNDLED_MODEL
    assert _heard(row.text, SENTENCE)
    assert row.language == "en" and row.language_probability > 0.5
    assert row.avg_logprob < 0
    assert row.audio_duration_s == pytest.approx(4.5, abs=2.0)
    assert row.wall_time_s > 0
    assert row.real_time_factor == pytest.approx(row.wall_time_s / row.audio_duration_s, rel=0.01)
    assert (row.device, row.compute_type) == ("cpu", "int8")
    starts = [segment["start"] for segment in row.segments]
    assert row.segments and starts == sorted(starts)
    assert all(s["end"] >= s["start"] and s["text"] for s in row.segments)
    assert " ".join(s["text"] for s in row.segments) == row.text
    # One task, one completed task_logs row, written by the dispatcher.
    assert [log.status for log in _logs(atlas)] == ["completed"]


def test_a_subtitle_sidecar_is_used_instead_of_running_the_model(atlas, whisper, files, tmp_path):
    video = _place(files.speech_video(), tmp_path / "lib", "film.mp4")
    video.with_suffix(".srt").write_text(
        "1\n00:00:00,000 --> 00:00:01,500\nA line only the <b>sidecar</b> knows.\n\n"
        "2\n00:00:01,500 --> 00:00:03,000\nAnd a second one.\n",
        encoding="utf-8",
    )
    (media_id,) = _ingest(atlas, video)
    report = transcribe_library(atlas.dispatcher, media_ids=[media_id])

    assert report.sources() == {"sidecar": 1}
    row = _row(atlas, media_id)
    assert row.text == "A line only the sidecar knows. And a second one."
    assert row.source == "sidecar" and row.model is None
    assert row.source_detail == "film.srt"
    assert [(s["start"], s["end"]) for s in row.segments] == [(0.0, 1.5), (1.5, 3.0)]


def test_force_runs_the_model_despite_subtitles_and_replaces_the_transcript(
    atlas, whisper, files, tmp_path
):
    video = _place(files.speech_video(), tmp_path / "lib", "film.mp4")
    video.with_suffix(".srt").write_text(
        "1\n00:00:00,000 --> 00:00:01,000\nSidecar words.\n", encoding="utf-8"
    )
    (media_id,) = _ingest(atlas, video)
    transcribe_library(atlas.dispatcher, media_ids=[media_id])
    again = transcribe_library(atlas.dispatcher, media_ids=[media_id])
    assert again.summary() == {"unchanged": 1}

    forced = transcribe_library(atlas.dispatcher, media_ids=[media_id], force=True)
    assert forced.sources() == {"whisper": 1}
    with atlas.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(transcripts)) == 1
    row = _row(atlas, media_id)
    assert row.source == "whisper" and _heard(row.text, SENTENCE)


def test_an_embedded_subtitle_stream_is_used_instead_of_the_model(atlas, whisper, files, tmp_path):
    (media_id,) = _ingest(atlas, _place(files.embedded_mkv(), tmp_path / "lib"))
    transcribe_library(atlas.dispatcher, media_ids=[media_id])
    row = _row(atlas, media_id)
    assert row.source == "embedded"
    assert row.text == "Words from the embedded stream."
    assert row.language == "en"
    assert row.source_detail.startswith("stream 2 (subrip")


def test_silence_and_a_pure_tone_give_empty_transcripts_not_hallucinations(
    atlas, whisper, files, tmp_path
):
    ids = _ingest(
        atlas, _place(files.silence(), tmp_path / "lib"), _place(files.tone(), tmp_path / "lib")
    )
    report = transcribe_library(atlas.dispatcher, media_ids=ids)
    assert report.summary() == {"transcribed": 2}
    for media_id in ids:
        row = _row(atlas, media_id)
        assert row.text == "" and row.segments == []
        assert row.source == "whisper"
    # An empty transcript is a transcript: --all does not try again.
    assert select_media(atlas.engine, glob=None, force=False) == ([], 0)


def test_bad_files_fail_with_a_clear_reason_and_the_batch_goes_on(atlas, whisper, files, tmp_path):
    folder = tmp_path / "lib"
    good = _place(files.speech_mp3(), folder, "good.mp3")
    broken = _place(files.broken_mp3(), folder, "broken.mp3")
    mute = _place(files.mute_video(), folder, "mute.mp4")
    not_media = folder / "notes.mp3"
    not_media.write_text("this is not audio\n", encoding="utf-8")

    report = transcribe_library(atlas.dispatcher, paths=[folder])

    errors = {Path(item.path).name: item.error for item in report.failed}
    assert set(errors) == {"broken.mp3", "mute.mp4", "notes.mp3"}
    assert errors["broken.mp3"].startswith(f"{broken}: the audio stream is broken: only ")
    assert errors["mute.mp4"].startswith(f"{mute}: no audio stream, nothing to transcribe")
    assert errors["notes.mp3"].startswith(f"{not_media}: not a readable media file")
    assert report.summary() == {"transcribed": 1, "error": 3}
    assert [i.path for i in report.items if i.status == "transcribed"] == [str(good)]
    # Each failure is a task_logs error row with that reason (the non-media file's
    # from its ingest task); nothing half-written.
    transcribe_errors = [log.error_reason for log in _logs(atlas) if log.status == "error"]
    assert sorted(transcribe_errors) == sorted([errors["broken.mp3"], errors["mute.mp4"]])
    ingest_errors = [log.error_reason for log in _logs(atlas, "ingest") if log.status == "error"]
    assert ingest_errors == [errors["notes.mp3"]]
    with atlas.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(transcripts)) == 1


def test_bad_model_settings_fail_each_file_clearly_while_subtitled_files_still_work(
    atlas, whisper, files, tmp_path
):
    folder = tmp_path / "lib"
    speech = _place(files.speech_mp3(), folder, "speech.mp3")
    film = _place(files.speech_video(), folder, "film.mp4")
    film.with_suffix(".vtt").write_text(
        "WEBVTT\n\n00:00.000 --> 00:01.000\nSubtitled.\n", encoding="utf-8"
    )
    speech_id, film_id = _ingest(atlas, speech, film)

    report = transcribe_library(atlas.dispatcher, media_ids=[speech_id, film_id], model="huge")
    assert report.sources() == {"sidecar": 1}
    (failed,) = report.failed
    assert failed.media_id == speech_id
    assert failed.error == (
        "unknown Whisper model 'huge'; use tiny, base, small, medium (each also as .en), "
        "large-v2, large-v3, turbo, or a local model folder (setting transcription.model)"
    )
    assert [log.error_reason for log in _logs(atlas) if log.status == "error"] == [failed.error]

    missing = tmp_path / "no-model-here"
    report = transcribe_library(atlas.dispatcher, media_ids=[speech_id], model=str(missing))
    assert report.failed[0].error == (
        f"Whisper model folder {missing} does not exist (setting transcription.model)"
    )


def test_english_only_model_says_so_when_another_language_is_asked(atlas, whisper, files, tmp_path):
    (media_id,) = _ingest(atlas, _place(files.speech_mp3(), tmp_path / "lib"))
    report = transcribe_library(atlas.dispatcher, media_ids=[media_id], language="de")
    assert report.failed[0].error.startswith(
        "the Whisper model tiny.en understands English only; to transcribe language de"
    )
    assert _row(atlas, media_id) is None


def test_a_changed_file_gets_a_new_transcript_and_an_unchanged_one_costs_no_task(
    atlas, whisper, files, media_maker, tmp_path
):
    path = _place(files.speech_mp3(), tmp_path / "lib", "talk.mp3")
    (media_id,) = _ingest(atlas, path)
    transcribe_library(atlas.dispatcher, media_ids=[media_id])
    assert _heard(_row(atlas, media_id).text, SENTENCE)

    unchanged = transcribe_library(atlas.dispatcher, paths=[path], all_media=True)
    assert unchanged.summary() == {"unchanged": 1}
    assert len(_logs(atlas)) == 1

    shutil.copyfile(media_maker.audio("other.mp3", speech=OTHER), path)
    report = transcribe_library(atlas.dispatcher, paths=[path])
    assert report.summary() == {"transcribed": 1}
    assert report.items[0].media_id == media_id
    assert _heard(_row(atlas, media_id).text, OTHER, share=0.6)


def test_all_and_batch_select_media_that_can_hold_speech_and_lack_a_transcript(
    atlas, files, tmp_path
):
    folder = tmp_path / "lib"
    talk = _place(files.speech_mp3(), folder / "talks", "talk.mp3")
    film = _place(files.speech_video(), folder / "films", "film.mp4")
    mute = _place(files.mute_video(), folder / "films", "mute.mp4")
    still = _place(files.maker.image(), folder, "still.png")
    talk_id, film_id, mute_id, _still_id = _ingest(atlas, talk, film, mute, still)

    assert select_media(atlas.engine, glob=None, force=False) == (sorted([talk_id, film_id]), 2)
    assert select_media(atlas.engine, glob="*.mp4", force=False) == ([film_id], 1)
    assert select_media(atlas.engine, glob="talks/*", force=False) == ([talk_id], 0)
    assert select_media(atlas.engine, glob=f"{folder}/films/f*", force=False) == ([film_id], 0)
    # A mute video with a subtitle sidecar has something to transcribe.
    mute.with_suffix(".srt").write_text(
        "1\n00:00:00,000 --> 00:00:01,000\nSilent film card.\n", encoding="utf-8"
    )
    ingest_paths(atlas.dispatcher, [mute], force=True)
    assert select_media(atlas.engine, glob="*.mp4", force=False) == (sorted([film_id, mute_id]), 0)


def test_catalogue_records_without_files_are_skipped_quietly_by_the_chain(atlas, tmp_path):
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text(
        "title,description,genres,year\nPaper Moon,A con man and a girl,Comedy,1973\n",
        encoding="utf-8",
    )
    (record_id,) = import_catalog(atlas.dispatcher, catalogue).created
    outcome = atlas.dispatcher.submit("transcribe", {"media_ids": [record_id], "chain": True})
    assert outcome.ok
    assert outcome.result["items"][0]["status"] == "skipped"
    assert outcome.result["items"][0]["reason"] == "a catalogue record without a file"
    assert _row(atlas, record_id) is None

    # Asked for explicitly, it is refused with a reason.
    explicit = atlas.dispatcher.submit("transcribe", {"media_ids": [record_id]})
    assert explicit.error == (
        f"media {record_id} is a catalogue record without a file; nothing to transcribe"
    )


@pytest.fixture
def next_stage(monkeypatch):
    """Record what the chain schedules after transcription (a stand-in 'tag' stage)."""
    seen: list[list[int]] = []

    def tag(ctx, media_ids, chain=False):
        seen.append(list(media_ids))
        return {"tagged": len(media_ids)}

    monkeypatch.setitem(_REGISTRY, "tag", TaskType(name="tag", func=tag))
    return seen


def test_ingest_chains_transcription_and_the_next_stage_even_without_audio(
    make_settings, whisper, files, tmp_path, next_stage
):
    atlas = open_atlas(make_settings(auto_process=True))
    try:
        talk = _place(files.speech_mp3(), tmp_path / "lib", "talk.mp3")
        mute = _place(files.mute_video(), tmp_path / "lib", "mute.mp4")
        talk_id, mute_id = _ingest(atlas, talk, mute)

        assert _heard(_row(atlas, talk_id).text, SENTENCE)
        assert _row(atlas, mute_id) is None
        with atlas.engine.connect() as connection:
            runs = connection.execute(
                select(tasks.c.task_type, tasks.c.status, tasks.c.params, tasks.c.error_reason)
                .where(tasks.c.task_type == "transcribe")
                .order_by(tasks.c.id)
            ).all()
        by_media = {r.params["media_ids"][0]: r for r in runs}
        assert len(runs) == 2 and all(r.params["chain"] for r in runs)
        assert by_media[talk_id].status == "completed"
        assert by_media[mute_id].status == "error"
        assert by_media[mute_id].error_reason.startswith(f"{mute}: no audio stream")
        # Tagging and embedding still happen for the file without audio.
        assert sorted(next_stage) == sorted([[talk_id], [mute_id]])
    finally:
        atlas.close()


def test_the_sample_library_is_transcribed_by_the_chain_using_its_sidecars(
    make_settings, whisper, tmp_path
):
    items = load_items()
    chosen = [next(i for i in items if i.subtitles), next(i for i in items if not i.subtitles)]
    library = build_library(tmp_path / "demo", items=chosen)
    atlas = open_atlas(make_settings(auto_process=True))
    try:
        report = ingest_paths(atlas.dispatcher, library.files)
        by_path = {item.path: item.media_id for item in report.items}
        subtitled = _row(atlas, by_path[str(library.files[0])])
        spoken = _row(atlas, by_path[str(library.files[1])])
        assert subtitled.source == "sidecar"
        assert subtitled.text == " ".join(chosen[0].synopsis.split())
        assert spoken.source == "whisper"
        assert _heard(spoken.text, chosen[1].synopsis, share=0.6)
    finally:
        atlas.close()


def test_analytics_report_throughput_by_model_and_counts(atlas, whisper, files, tmp_path):
    folder = tmp_path / "lib"
    speech = _place(files.speech_mp3(), folder, "speech.mp3")
    film = _place(files.speech_video(), folder, "film.mp4")
    film.with_suffix(".srt").write_text(
        "1\n00:00:00,000 --> 00:00:01,000\nSubtitled.\n", encoding="utf-8"
    )
    mute = _place(files.mute_video(), folder, "mute.mp4")
    ids = _ingest(atlas, speech, film, mute)
    transcribe_library(atlas.dispatcher, media_ids=ids)

    data = transcription_analytics(atlas.engine)
    assert data.by_source == {"sidecar": 1, "whisper": 1}
    (model,) = data.by_model
    row = _row(atlas, ids[0])
    assert (model.model, model.device, model.transcripts) == (BUNDLED_MODEL, "cpu", 1)
    assert model.audio_s == pytest.approx(row.audio_duration_s)
    assert model.throughput == pytest.approx(row.audio_duration_s / row.wall_time_s, rel=0.01)
    assert model.mean_rtf == pytest.approx(row.real_time_factor, rel=0.01)
    assert data.task_runs == {"completed": 2, "error": 1}
    assert data.to_dict()["by_model"][0]["throughput"] == model.throughput


def test_transcribed_media_ids_match_the_media_table(atlas, whisper, files, tmp_path):
    (media_id,) = _ingest(atlas, _place(files.speech_mp3(), tmp_path / "lib"))
    transcribe_library(atlas.dispatcher, all_media=True)
    with atlas.engine.connect() as connection:
        content_hash = connection.scalar(select(media.c.content_hash).where(media.c.id == media_id))
    assert _row(atlas, media_id).content_hash == content_hash


def test_cancelling_while_the_model_works_stores_nothing(atlas, whisper, files, tmp_path):
    (media_id,) = _ingest(atlas, _place(files.speech_mp3(), tmp_path / "lib"))
    heard: list[int] = []

    def cancel() -> None:
        heard.append(1)
        raise TaskCancelled("task was cancelled")

    with pytest.raises(TaskCancelled):
        transcribe_media(atlas.engine, atlas.settings.transcription, media_id, checkpoint=cancel)
    assert heard == [1]
    assert _row(atlas, media_id) is None


def test_a_worker_process_transcribes_queued_media_with_one_model_load(
    make_settings, files, tmp_path, home, database_url
):
    queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    settings = make_settings(queue_url=queue_url, queue_name="atlas-transcribe-test")
    atlas = open_atlas(settings.model_copy(update={"auto_process": False}))
    try:
        folder = tmp_path / "lib"
        first = _place(files.speech_mp3(), folder, "first.mp3")
        second = _place(files.speech_video(), folder, "second.mp4")
        report = transcribe_library(atlas.dispatcher, paths=[folder], wait=False)
        assert report.summary() == {"queued": 2}

        env = {
            **os.environ,
            "ATLAS_HOME": str(home),
            "ATLAS_DATABASE_URL": database_url,
            "ATLAS_QUEUE_URL": queue_url,
            "ATLAS_QUEUE_NAME": "atlas-transcribe-test",
            "ATLAS_AUTO_PROCESS": "false",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "atlas", "worker", "--workers", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            outcomes = atlas.dispatcher.wait([item.task_id for item in report.items], timeout_s=120)
        finally:
            worker.send_signal(signal.SIGINT)
            try:
                output = worker.communicate(timeout=30)[0].decode()
            except subprocess.TimeoutExpired:
                worker.kill()
                output = worker.communicate()[0].decode()
            atlas.dispatcher.queue.huey.flush()

        assert [o.status for o in outcomes] == ["completed", "completed"], output
        with atlas.engine.connect() as connection:
            rows = connection.execute(select(transcripts).order_by(transcripts.c.media_id)).all()
            workers = set(
                connection.execute(
                    select(task_logs.c.worker).where(task_logs.c.task_type == "transcribe")
                ).scalars()
            )
        assert len(rows) == 2
        assert all(row.source == "whisper" and _heard(row.text, SENTENCE) for row in rows)
        # Both ran in the one worker process (the files were ingested here).
        assert len(workers) == 1 and not workers.pop().endswith(f":{os.getpid()}")
        assert {first.name, second.name} == {Path(i.path).name for i in report.items}
    finally:
        atlas.close()
