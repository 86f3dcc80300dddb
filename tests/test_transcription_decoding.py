"""Decoding that holds up: collapsed windows decoded again, no segment outside the audio."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from atlas.config import TranscriptionSettings
from atlas.transcription import BUNDLED_MODEL, ModelChoice, get_transcriber
from atlas.transcription.decoding import (
    RawSegment,
    clip_to_audio,
    collapsed,
    decode_options,
    redecode,
    rescale,
    temperatures,
)
from atlas.transcription.models import bundled_model_path
from atlas.transcription.speech_rate import loudness_peaks_per_second
from atlas.transcription.whisper import decode_audio

# Thirty words; spoken by espeak-ng at 150 words a minute it lasts about 11 s.
THIRTY = (
    "A young farmer leaves his quiet village to find his missing brother, crossing "
    "cold mountains and dark forests, and learns that the old map he carries leads "
    "to a forgotten city."
)


def _segment(start: float, end: float, text: str) -> RawSegment:
    return RawSegment(start, end, text, avg_logprob=-0.4, no_speech_prob=0.01, tokens=12)


def _words(text: str) -> set[str]:
    return {word.strip(".,").lower() for word in text.split()}


def test_no_segment_is_kept_outside_the_audio():
    segments = [
        _segment(-0.2, 3.0, "starts before the audio"),
        _segment(3.0, 21.0, "reaches past the end"),
        _segment(8.3, 9.0, "starts at the end"),
        _segment(12.0, 14.0, "starts after the end"),
    ]
    kept, dropped = clip_to_audio(segments, 8.3)
    assert [(s.start, s.end) for s in kept] == [(0.0, 3.0), (3.0, 8.3)]
    assert [s.text for s in kept] == ["starts before the audio", "reaches past the end"]
    assert dropped == 2


def test_a_window_with_too_few_words_or_past_the_audio_is_collapsed():
    settings = TranscriptionSettings()
    # The known defect: 8 words of 30 from an 8.3 s clip, timed 0.0 - 21.0 s.
    assert collapsed(_segment(0.0, 21.0, "one two three four five six seven eight"), 8.3, settings)
    # Past the end even with the words-per-second check off.
    off = TranscriptionSettings(collapse_words_per_second=0)
    assert collapsed(_segment(0.0, 9.5, "a b c d e f g h i j k l"), 8.3, off)
    # 3 words over 6 s of a 10 s clip: far slower than speech.
    assert collapsed(_segment(1.0, 7.0, "three words only"), 10.0, settings)
    assert not collapsed(_segment(1.0, 7.0, "three words only"), 10.0, off)
    # Ordinary speech, and a short pause with one word, are not.
    assert not collapsed(_segment(0.0, 4.0, "ten words " * 5), 8.3, settings)
    assert not collapsed(_segment(2.0, 3.5, "yes"), 8.3, settings)


def test_slowed_speech_is_decoded_longer_and_its_times_are_mapped_back(media_maker):
    speech = media_maker.speech(THIRTY)
    plain = decode_audio(speech)
    slowed = decode_audio(speech, tempo=0.8)
    assert abs(len(slowed) / len(plain) - 1.25) < 0.02
    (back,) = rescale([_segment(2.0, 10.0, "words")], 0.8)
    assert (back.start, back.end) == pytest.approx((1.6, 8.0))
    with pytest.raises(ValueError):
        TranscriptionSettings(fast_speech_tempo=0.3)


def test_loudness_peaks_follow_the_syllable_rate_of_a_modulated_tone():
    seconds = np.arange(0, 6.0, 1 / 16_000)
    carrier = np.sin(2 * np.pi * 1000 * seconds)

    def syllables(rate: float) -> np.ndarray:
        envelope = np.sin(np.pi * rate * seconds) ** 2  # ``rate`` bursts a second
        return (0.3 * carrier * envelope).astype(np.float32)

    four, eight = loudness_peaks_per_second(syllables(4)), loudness_peaks_per_second(syllables(8))
    assert 4.0 < four < 5.2  # the quietest troughs are pauses, not speaking time
    assert eight / four == pytest.approx(2.0, rel=0.2)
    assert loudness_peaks_per_second(np.zeros(16_000 * 3, dtype=np.float32)) == 0.0
    assert loudness_peaks_per_second(np.zeros(100, dtype=np.float32)) == 0.0


def test_faster_speech_has_more_loudness_peaks_a_second(tmp_path):
    rates = []
    for words_per_minute in (120, 160, 220):
        out = tmp_path / f"{words_per_minute}.wav"
        subprocess.run(
            ["espeak-ng", "-s", str(words_per_minute), "-w", str(out), THIRTY], check=True
        )
        rates.append(loudness_peaks_per_second(decode_audio(out)))
    assert rates[0] < rates[1] < rates[2]
    assert rates[2] > 1.3 * rates[0]


def test_temperature_fallback_and_the_options_follow_the_settings():
    assert temperatures(TranscriptionSettings()) == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert temperatures(TranscriptionSettings(temperature_step=0.0)) == (0.0,)
    assert temperatures(TranscriptionSettings(temperature_step=0.3)) == (0.0, 0.3, 0.6, 0.9)
    options = decode_options(TranscriptionSettings(), "en")
    assert options["condition_on_previous_text"] is False
    assert options["compression_ratio_threshold"] == 2.4 and options["log_prob_threshold"] == -1.0
    assert options["vad_filter"] is True and "vad_parameters" in options
    assert "vad_parameters" not in decode_options(TranscriptionSettings(), "en", vad=False)


class _CountingModel:
    """A real Whisper model that notes the length of the audio of each decoding."""

    def __init__(self, model):
        self.model = model
        self.samples: list[int] = []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def transcribe(self, audio, **options):
        self.samples.append(len(audio))
        return self.model.transcribe(audio, **options)


@pytest.fixture(scope="module")
def whisper():
    transcriber = get_transcriber(ModelChoice(BUNDLED_MODEL, bundled_model_path()), "cpu", "int8")
    transcriber.load()
    return transcriber


@pytest.mark.slow
def test_a_collapsed_window_decoded_again_finds_its_words_inside_the_audio(media_maker, whisper):
    audio = decode_audio(media_maker.speech(THIRTY))
    audio_s = len(audio) / 16_000
    first_eight = " ".join(THIRTY.split()[:8])
    stuck = _segment(0.0, 21.0, first_eight)
    settings = TranscriptionSettings()
    assert collapsed(stuck, audio_s, settings)

    again = redecode(whisper.load(), audio, stuck, settings, "en")

    assert again is not None
    words = sum(segment.words for segment in again)
    assert words >= 24  # of 30
    assert len(_words(" ".join(s.text for s in again)) & _words(THIRTY)) >= 20
    assert all(0 <= s.start <= s.end <= audio_s + 0.05 for s in again)


@pytest.mark.slow
def test_speech_with_noise_under_it_is_transcribed_inside_its_duration(
    media_maker, whisper, tmp_path
):
    noisy = tmp_path / "noisy.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(media_maker.speech(THIRTY)), "-f", "lavfi",
         "-i", "anoisesrc=color=pink:amplitude=0.04:r=16000", "-filter_complex",
         "[0:a]aresample=16000[s];[s][1:a]amix=inputs=2:duration=first:normalize=0",
         str(noisy)],
        check=True,
        capture_output=True,
    )  # fmt: skip

    transcript = whisper.transcribe(noisy, TranscriptionSettings())

    duration = transcript.audio_duration_s
    assert duration is not None and 9 < duration < 14
    assert transcript.segments
    assert all(0 <= s.start <= s.end <= duration for s in transcript.segments)
    assert len(_words(transcript.text) & _words(THIRTY)) >= 18


@pytest.mark.slow
def test_fast_speech_is_decoded_again_slowed_and_kept_inside_its_duration(
    media_maker, whisper, tmp_path
):
    fast = tmp_path / "fast.wav"
    subprocess.run(["espeak-ng", "-s", "260", "-w", str(fast), THIRTY], check=True)
    settings = TranscriptionSettings(fast_speech_peaks_per_second=6.0, fast_speech_tempo=0.8)
    counting = _CountingModel(whisper.load())
    whisper._model = counting
    try:
        transcript = whisper.transcribe(fast, settings)
    finally:
        whisper._model = counting.model

    assert any(note.startswith("fast speech") for note in transcript.notes)
    # Judged from the audio before decoding: the whole audio is decoded once, slowed.
    recorded = len(decode_audio(fast))
    assert counting.samples[0] == pytest.approx(recorded / 0.8, rel=0.02)
    assert all(samples < recorded for samples in counting.samples[1:])
    duration = transcript.audio_duration_s
    assert duration is not None and all(
        0 <= s.start <= s.end <= duration for s in transcript.segments
    )
    assert transcript.segments[-1].end > duration * 0.6  # times mapped back, not slowed
    assert len(_words(transcript.text) & _words(THIRTY)) >= 18


@pytest.mark.slow
def test_speech_at_an_ordinary_pace_is_decoded_once_slowed_a_little(whisper, tmp_path):
    slow = tmp_path / "slow.wav"
    subprocess.run(["espeak-ng", "-s", "120", "-w", str(slow), THIRTY], check=True)
    counting = _CountingModel(whisper.load())
    whisper._model = counting
    try:
        transcript = whisper.transcribe(slow, TranscriptionSettings())
    finally:
        whisper._model = counting.model

    assert not any(note.startswith("fast speech") for note in transcript.notes)
    recorded = len(decode_audio(slow))
    assert counting.samples[0] == pytest.approx(recorded / 0.9, rel=0.02)  # speech_tempo
    assert all(samples < recorded for samples in counting.samples[1:])
    assert len(_words(transcript.text) & _words(THIRTY)) >= 18
