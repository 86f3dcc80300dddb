"""Transcription without a model: subtitle parsing, model choice and resolution, settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atlas.config import TranscriptionSettings
from atlas.errors import InvalidInput, NotFound, Unavailable
from atlas.transcription import (
    BUNDLED_MODEL,
    Hardware,
    check_language,
    choose_model,
    parse_subtitles,
    resolve_model,
)
from atlas.transcription.subtitles import language_code, pick_stream

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there,
general.

2
00:00:02,500 --> 00:00:04,000
{\\an8}The &amp; sign &lt;stays&gt;.

3
00:01:02,000 --> 01:00:03,250
Last cue.
"""

VTT = """WEBVTT - a title

NOTE a comment block
that spans lines

STYLE
::cue { color: lime }

intro
00:01.000 --> 00:02.000 align:start position:10%
<v Roger>One</v>

00:02.000 --> 00:03.000
One

00:03.000 --> 00:04.500
Two
"""


def test_srt_cues_parse_into_timed_segments_without_markup():
    segments = parse_subtitles(SRT)
    assert [(s.start, s.end, s.text) for s in segments] == [
        (1.0, 2.5, "Hello there, general."),
        (2.5, 4.0, "The & sign <stays>."),
        (62.0, 3603.25, "Last cue."),
    ]


def test_vtt_cues_parse_and_headers_notes_and_repeats_are_dropped():
    segments = parse_subtitles(VTT)
    assert [(s.start, s.end, s.text) for s in segments] == [(1.0, 3.0, "One"), (3.0, 4.5, "Two")]


def test_text_without_cues_parses_to_nothing():
    assert parse_subtitles("just some words\n\nand more") == []


def test_container_language_tags_map_to_whisper_codes():
    assert language_code("eng") == "en"
    assert language_code("en-GB") == "en"
    assert language_code("ger") == "de"
    assert language_code("und") is None
    assert language_code(None) is None


def test_embedded_stream_choice_prefers_the_asked_language_then_english_and_skips_bitmaps():
    streams = [
        {"index": 0, "codec_type": "video", "codec_name": "h264"},
        {
            "index": 2,
            "codec_type": "subtitle",
            "codec_name": "hdmv_pgs_subtitle",
            "language": "fra",
        },
        {"index": 3, "codec_type": "subtitle", "codec_name": "subrip", "language": "deu"},
        {"index": 4, "codec_type": "subtitle", "codec_name": "ass", "language": "eng"},
    ]
    assert pick_stream(streams, "de")["index"] == 3
    assert pick_stream(streams, None)["index"] == 4
    assert pick_stream(streams[:2], None) is None


CPU2 = Hardware(cpu_count=2, cuda_devices=0)
CPU16 = Hardware(cpu_count=16, cuda_devices=0)
GPU = Hardware(cpu_count=16, cuda_devices=1)


@pytest.mark.parametrize(
    ("quality", "minutes", "hardware", "language", "best"),
    [
        ("fast", 5, CPU2, None, "tiny"),
        ("fast", 5, CPU2, "en", "tiny.en"),
        ("balanced", 5, CPU2, None, "base"),
        ("balanced", 90, CPU2, None, "tiny"),
        ("balanced", 90, CPU16, None, "base"),
        ("high", 20, CPU2, "en", "small.en"),
        ("high", 20, CPU16, None, "medium"),
        ("high", 45, CPU16, None, "small"),
        ("high", 90, CPU2, None, "base"),
        ("fast", 5, GPU, None, "base"),
        ("balanced", 90, GPU, "en", "turbo"),
        ("high", 90, GPU, None, "large-v3"),
    ],
)
def test_quality_rule_picks_the_model_from_length_and_hardware(
    quality, minutes, hardware, language, best
):
    sizes = choose_model(quality, minutes * 60, hardware, language)
    assert sizes[0] == best
    # Going down in size from there, to the smallest.
    assert sizes[-1] in ("tiny", "tiny.en")


def _fake_model_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"")
    return folder


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def test_no_model_setting_means_the_bundled_tiny_en():
    choice = resolve_model(TranscriptionSettings())
    assert choice.name == BUNDLED_MODEL
    assert (choice.path / "model.bin").is_file()


def test_quality_uses_a_model_from_the_models_dir(tmp_path, empty_hf_cache):
    folder = _fake_model_folder(tmp_path / "models" / "small.en")
    settings = TranscriptionSettings(models_dir=tmp_path / "models")
    choice = resolve_model(settings, quality="high", duration_s=600, language="en", hardware=CPU2)
    assert (choice.name, choice.path) == ("small.en", folder)


def test_quality_falls_back_to_smaller_local_models_and_then_the_bundled_one(
    tmp_path, empty_hf_cache
):
    _fake_model_folder(tmp_path / "models" / "base.en")
    settings = TranscriptionSettings(models_dir=tmp_path / "models")
    choice = resolve_model(settings, quality="high", duration_s=600, language="en", hardware=CPU2)
    assert choice.name == "base.en"
    assert "small.en is not available offline" in choice.reason

    bare = TranscriptionSettings(models_dir=tmp_path / "nothing-here")
    fallback = resolve_model(bare, quality="high", duration_s=600, hardware=CPU2)
    assert fallback.name == BUNDLED_MODEL
    assert "small is not available offline" in fallback.reason


def test_a_size_that_is_not_on_this_machine_is_unavailable_and_never_downloaded(
    tmp_path, empty_hf_cache
):
    with pytest.raises(Unavailable) as caught:
        resolve_model(TranscriptionSettings(), model="large-v3")
    assert "not available offline" in caught.value.message
    assert "transcription.model" in caught.value.message
    # Waiting does not bring the files: the dispatcher must not retry.
    assert caught.value.transient is False
    assert not (tmp_path / "hf-cache").exists() or not any((tmp_path / "hf-cache").iterdir())


def test_unknown_model_name_is_invalid_input_naming_the_setting():
    with pytest.raises(InvalidInput) as caught:
        resolve_model(TranscriptionSettings(), model="enormous")
    assert caught.value.message.startswith("unknown Whisper model 'enormous'; use tiny, base")
    assert "(setting transcription.model)" in caught.value.message


def test_model_path_that_does_not_exist_is_not_found(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(NotFound) as caught:
        resolve_model(TranscriptionSettings(), model=str(missing))
    assert caught.value.message == (
        f"Whisper model folder {missing} does not exist (setting transcription.model)"
    )


def test_model_folder_without_model_bin_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="not a CTranslate2 Whisper model folder"):
        resolve_model(TranscriptionSettings(), model=str(tmp_path))


def test_a_local_model_folder_is_used_as_given(tmp_path):
    folder = _fake_model_folder(tmp_path / "my-whisper")
    choice = resolve_model(TranscriptionSettings(model=str(folder)))
    assert choice.path == folder


def test_language_codes_are_checked_and_auto_means_detect():
    assert check_language("EN") == "en"
    assert check_language("auto") is None
    assert check_language(None) is None
    with pytest.raises(InvalidInput, match="unknown language 'xx'"):
        check_language("xx")


def test_transcription_settings_reject_bad_values():
    from atlas.config import load_settings

    with pytest.raises(InvalidInput, match=r"transcription\.device"):
        load_settings(
            home="/nonexistent-home-for-test", environ={"ATLAS_TRANSCRIPTION__DEVICE": "tpu"}
        )


def test_cli_help_does_not_import_the_speech_libraries():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from atlas.cli.app import app\n"
        "result = CliRunner().invoke(app, ['smart-transcribe', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert '--quality' in result.output\n"
        "names = ('ctranslate2', 'faster_whisper', 'torch', 'numpy')\n"
        "heavy = [name for name in names if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
