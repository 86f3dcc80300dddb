"""``atlas smart-transcribe``, in-process, against real media and the real tiny.en."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_transcription import SENTENCE, Files, _heard, files, whisper  # noqa: F401

pytestmark = pytest.mark.slow


def _errors(stderr: str) -> list[str]:
    """The error lines (the progress bar shares stderr)."""
    return [line for line in stderr.splitlines() if line.startswith("atlas:")]


def _library(files: Files, folder: Path) -> dict[str, Path]:  # noqa: F811
    folder.mkdir(parents=True, exist_ok=True)
    talk = folder / "talk.mp3"
    shutil.copyfile(files.speech_mp3(), talk)
    film = folder / "film.mp4"
    shutil.copyfile(files.speech_video(), film)
    film.with_suffix(".srt").write_text(
        "1\n00:00:00,000 --> 00:00:02,000\nThe sidecar speaks.\n", encoding="utf-8"
    )
    return {"talk": talk, "film": film}


def test_cli_transcribes_a_new_folder_and_reports_each_file(cli, whisper, files, tmp_path):  # noqa: F811
    paths = _library(files, tmp_path / "lib")
    result = cli("smart-transcribe", str(tmp_path / "lib"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"] == {"transcribed": 2}
    assert data["sources"] == {"sidecar": 1, "whisper": 1}
    by_name = {Path(item["path"]).name: item for item in data["items"]}
    assert by_name["film.mp4"]["result"]["source"] == "sidecar"
    talk = by_name["talk.mp3"]["result"]
    assert talk["model"] == "tiny.en" and talk["language"] == "en"
    assert talk["real_time_factor"] > 0

    shown = cli("media", "show", str(by_name["talk.mp3"]["media_id"]), "--json")
    assert _heard(json.loads(shown.stdout)["transcript"]["text"], SENTENCE)

    again = cli("smart-transcribe", "--all")
    assert again.exit_code == 0
    assert "nothing to do" in again.stdout

    table = cli("smart-transcribe", "--batch", "*.mp4", "--force")
    assert table.exit_code == 0, table.output
    assert "1 item(s): 1 transcribed (whisper 1)" in table.stdout
    assert paths["film"].name in table.stdout


def test_cli_bad_input_gives_one_clear_line_and_an_error_row(cli, whisper, files, tmp_path):  # noqa: F811
    _library(files, tmp_path / "lib")
    not_media = tmp_path / "lib" / "notes.mp3"
    not_media.write_text("plain text\n", encoding="utf-8")

    result = cli("smart-transcribe", str(tmp_path / "lib"))
    assert result.exit_code == 1
    (line,) = _errors(result.stderr)
    assert line.startswith(f"atlas: {not_media}: not a readable media file (")
    assert "2 transcribed, 1 error" in result.stdout

    model = cli("smart-transcribe", "--media", "1", "--force", "--model", "small-ish")
    assert model.exit_code == 1
    assert _errors(model.stderr) == [
        "atlas: unknown Whisper model 'small-ish'; use tiny, base, small, medium (each also "
        "as .en), large-v2, large-v3, turbo, or a local model folder (setting "
        "transcription.model)"
    ]
    logs = json.loads(cli("tasks", "list", "--type", "transcribe", "--json").stdout)
    assert logs[0]["status"] == "error"
    assert logs[0]["error_reason"] == _errors(model.stderr)[0].removeprefix("atlas: ")

    missing = tmp_path / "models" / "gone"
    path = cli("smart-transcribe", "--media", "1", "--force", "--model", str(missing))
    assert _errors(path.stderr) == [
        f"atlas: Whisper model folder {missing} does not exist (setting transcription.model)"
    ]

    unknown = cli("smart-transcribe", "--media", "999")
    assert (unknown.exit_code, unknown.stderr.strip()) == (3, "atlas: no media with id 999")

    language = cli("smart-transcribe", "--all", "--language", "klingon")
    assert language.exit_code == 2
    assert language.stderr.startswith("atlas: unknown language 'klingon'; use a code Whisper knows")

    nothing = cli("smart-transcribe")
    assert (nothing.exit_code, nothing.stderr.strip()) == (
        2,
        "atlas: say what to transcribe: PATH..., --media ID, --all or --batch GLOB",
    )


def test_cli_reports_one_line_per_distinct_reason(cli, whisper, files, tmp_path):  # noqa: F811
    folder = tmp_path / "lib"
    folder.mkdir()
    for name in ("a.mp3", "b.mp3"):
        shutil.copyfile(files.speech_mp3(), folder / name)
    result = cli("smart-transcribe", str(folder), "--model", "nope")
    assert result.exit_code == 1
    (line,) = _errors(result.stderr)
    assert line.startswith("atlas: unknown Whisper model 'nope'")
    assert line.endswith("(setting transcription.model) (2 files)")


def test_cli_analytics_show_throughput_by_model(cli, whisper, files, tmp_path):  # noqa: F811
    empty = cli("smart-transcribe", "--analytics")
    assert empty.exit_code == 0
    assert "no transcripts yet" in empty.stdout

    _library(files, tmp_path / "lib")
    assert cli("smart-transcribe", str(tmp_path / "lib")).exit_code == 0
    data = json.loads(cli("smart-transcribe", "--analytics", "--json").stdout)
    assert data["transcripts"] == 2
    assert data["by_source"] == {"sidecar": 1, "whisper": 1}
    (model,) = data["by_model"]
    assert model["model"] == "tiny.en" and model["transcripts"] == 1
    assert model["throughput"] == pytest.approx(model["audio_s"] / model["wall_s"])

    table = cli("smart-transcribe", "--analytics")
    assert "Transcription throughput by model" in table.stdout
    assert "transcripts: 2 (sidecar 1, whisper 1)" in table.stdout

    mixed = cli("smart-transcribe", "--analytics", "--all")
    assert mixed.exit_code == 2
    assert mixed.stderr.strip() == "atlas: --analytics takes no media; run it on its own"


def test_demo_transcribes_the_sample_library_using_its_sidecars(cli, whisper, tmp_path):  # noqa: F811
    result = cli("demo", "--dir", str(tmp_path / "demo"), "--items", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["transcripts"] == {"sidecar": 1, "whisper": 1}
    assert report["transcription_failures"] == []
    by_title = {item["title"]: item["transcript"] for item in report["media"]}
    assert by_title["The Quiet Orbit"]["source"] == "sidecar"  # it ships with an .srt
    assert by_title["Red Dust Harvest"]["model"] == "tiny.en"
    assert by_title["Red Dust Harvest"]["words"] > 20
