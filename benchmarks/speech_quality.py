"""Speech-to-text quality of the shipped tiny.en across voices, speeds, noise and music.

The speech: TMDB overviews of ``../shared/data/tmdb-movies-3000.csv`` spoken by
espeak-ng under eight settings (its default voice, ``en-us``, ``en-gb``, slow,
fast, pink noise under the speech, a simple tune under it), mixed by ffmpeg.
The texts: overviews of 12 to 45 words without digits (a spoken number has
several written forms), shuffled with a fixed seed and split in two: the first
``--dev`` texts are the development split, on which the decoding settings of
``TranscriptionSettings`` (``atlas.transcription.decoding``) were chosen; the
next ``--texts`` are the test split, the only one scored by default.

Each clip is transcribed by ``WhisperTranscriber.transcribe`` (the code Atlas
runs) twice, in turn: with the shipped settings and with the previous ones
(prompting each window with the one before, no re-decoding of a collapsed
window, faster-whisper's own guards, voice-activity chunks split at 500 ms of
silence, fast speech decoded at its recorded speed; the first version of the
shipped ones decoded fast speech twice, and was 1.30 times slower).
Figures, each with its target and verdict:

- WER averaged over every setting and text: <= 0.20; of each setting: <= 0.30.
  Reference and transcript are normalised alike by Whisper's
  ``EnglishTextNormalizer`` (as ``transformers`` ships it, with OpenAI's British
  to American spelling list in ``data/whisper_english_spelling.json``), the
  standard of English ASR evaluation; the WER after lower-casing and removing
  punctuation only is printed beside it;
- segments stored outside the audio's duration: 0;
- wall time of the shipped settings over the previous ones on the same clips
  (interleaved, so machine load hits both alike): <= 1.10, printed honestly.

Exits 1 when a target is missed.

    PYTHONPATH=src nice -n 10 python benchmarks/speech_quality.py [--split test|dev]
        [--texts 30] [--dev 16] [--threads 2] [--only SETTING] [--set key=value ...]

``--set`` overrides a decoding setting of the shipped ones (used on ``--split
dev`` while choosing them).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.config import TranscriptionSettings
from atlas.transcription import BUNDLED_MODEL, ModelChoice, get_transcriber
from atlas.transcription.models import bundled_model_path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tmdb-movies-3000.csv"
#: British -> American spellings of Whisper's English normaliser (OpenAI's
#: ``whisper/normalizers/english.json``, MIT licence), as its tokenizer ships it.
SPELLING = Path(__file__).resolve().parent / "data" / "whisper_english_spelling.json"
SEED = 16
TARGET_WER = 0.20
TARGET_SETTING_WER = 0.30
TARGET_SLOWDOWN = 1.10

#: The settings before this benchmark: faster-whisper's defaults, each window
#: prompted with the text of the one before, no re-decoding.
PREVIOUS = {
    "condition_on_previous_text": True,
    "collapse_words_per_second": 0.0,
    "temperature_step": 0.2,
    "compression_ratio_threshold": 2.4,
    "log_prob_threshold": -1.0,
    "vad_threshold": 0.5,
    "vad_min_silence_ms": 500,
    "vad_speech_pad_ms": 200,
    "fast_speech_peaks_per_second": 0.0,
    "speech_tempo": 1.0,
}

# A tune of four notes a second over a held fifth, quiet under the speech.
_MUSIC = (
    "aevalsrc=0.05*sin(2*PI*(220+55*mod(floor(4*t)\\,5))*t)"
    "+0.03*sin(2*PI*330*t)+0.02*sin(2*PI*165*t):s=16000"
)


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice/speed setting, optionally with a sound under it."""

    name: str
    voice: str | None  # None: espeak-ng's default voice
    speed: int  # words per minute
    pitch: int = 50
    under: str | None = None  # an ffmpeg lavfi source mixed under the speech

    def espeak_args(self) -> list[str]:
        args = ["-s", str(self.speed), "-p", str(self.pitch)]
        return (["-v", self.voice] if self.voice else []) + args


VOICES = [
    Voice("default", None, 175),
    Voice("en-us", "en-us", 160),
    Voice("en-gb", "en-gb", 160, pitch=35),
    Voice("slow", "en-us", 120),
    Voice("fast", "en-us", 200),
    Voice("default-fast", None, 200),
    Voice("noise", "en-us", 160, under="anoisesrc=color=pink:amplitude=0.04:r=16000"),
    Voice("music", "en-gb", 160, under=_MUSIC),
]


def load_texts(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    texts = []
    for row in sorted(rows, key=lambda row: int(row["id"])):
        text = " ".join(row["overview"].split())
        if 12 <= len(text.split()) <= 45 and not re.search(r"\d", text) and text.isascii():
            texts.append(text)
    random.Random(SEED).shuffle(texts)
    return texts


@functools.cache
def _whisper_normaliser() -> Any:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    spelling = json.loads(SPELLING.read_text(encoding="utf-8"))
    return EnglishTextNormalizer(spelling)


def normalise(text: str) -> list[str]:
    """Words of ``text`` as Whisper's ``EnglishTextNormalizer`` writes them.

    The standard normalisation of English ASR evaluation, applied alike to the
    reference and the transcript: lower case, no punctuation or brackets,
    hyphens and contractions split (``won't`` -> ``will not``), spelled numbers
    and ordinals as digits, British spellings as American ones.
    """
    return str(_whisper_normaliser()(text)).split()


def plain_words(text: str) -> list[str]:
    """Words of ``text`` lower-cased without punctuation (the benchmark's first normalisation)."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[-\u2013\u2014/]", " ", text)
    text = re.sub(r"[^a-z0-9' ]", " ", text)
    return [word.strip("'") for word in text.split() if word.strip("'")]


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level edit distance (substitutions + deletions + insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for index, word in enumerate(reference, start=1):
        current = [index] + [0] * len(hypothesis)
        for column, other in enumerate(hypothesis, start=1):
            current[column] = min(
                previous[column] + 1,
                current[column - 1] + 1,
                previous[column - 1] + (word != other),
            )
        previous = current
    return previous[-1]


def make_clip(folder: Path, voice: Voice, index: int, text: str) -> Path:
    out = folder / f"{voice.name}-{index:03d}.wav"
    if out.exists():
        return out
    speech = folder / f"{voice.name}-{index:03d}.speech.wav"
    subprocess.run(
        ["espeak-ng", *voice.espeak_args(), "-w", str(speech), text],
        check=True,
        capture_output=True,
    )
    if voice.under is None:
        speech.rename(out)
        return out
    mix = "[0:a]aresample=16000[s];[s][1:a]amix=inputs=2:duration=first:normalize=0"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(speech), "-f", "lavfi", "-i", voice.under,
         "-filter_complex", mix, "-ac", "1", "-ar", "16000", str(out)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    speech.unlink()
    return out


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        overrides[key] = value
    return overrides


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--split", choices=["test", "dev"], default="test")
    parser.add_argument("--texts", type=int, default=30, help="texts of the test split")
    parser.add_argument("--dev", type=int, default=16, help="texts of the development split")
    parser.add_argument("--threads", type=int, default=2, help="Whisper CPU threads")
    parser.add_argument("--only", action="append", default=[], help="only this setting")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--clips", type=Path, help="keep the clips in this folder")
    parser.add_argument("--verbose", action="store_true", help="print each clip")
    args = parser.parse_args(argv)
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            print(f"speech_quality: needs {tool} (scripts/bootstrap.sh installs it)")
            return 2
    texts = load_texts(args.data)
    if len(texts) < args.dev + args.texts:
        print(f"speech_quality: only {len(texts)} usable texts in {args.data}")
        return 2
    chosen = texts[: args.dev] if args.split == "dev" else texts[args.dev : args.dev + args.texts]
    voices = [voice for voice in VOICES if not args.only or voice.name in args.only]
    shipped = TranscriptionSettings.model_validate(
        {**TranscriptionSettings().model_dump(), **parse_overrides(args.overrides)}
    )
    previous = TranscriptionSettings.model_validate({**shipped.model_dump(), **PREVIOUS})
    transcriber = get_transcriber(
        ModelChoice(BUNDLED_MODEL, bundled_model_path()), "cpu", "int8", args.threads
    )
    transcriber.load()
    folder = args.clips or Path(tempfile.mkdtemp(prefix="atlas-speech-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"speech_quality: {args.split} split, {len(chosen)} texts x {len(voices)} settings, "
        f"tiny.en int8 on {args.threads} CPU thread(s)"
    )
    changed = {
        key: getattr(shipped, key)
        for key in PREVIOUS
        if getattr(shipped, key) != getattr(previous, key)
    }
    print(f"  shipped settings differ from the previous ones in: {changed}")
    errors = {"shipped": {}, "previous": {}}  # type: dict[str, dict[str, list[int]]]
    plain: dict[str, list[int]] = {}  # the shipped settings' WER, plain normalisation
    outside = {"shipped": 0, "previous": 0}
    wall = {"shipped": 0.0, "previous": 0.0}
    redecoded = 0
    slowed = 0
    try:
        for voice in voices:
            for name in errors:
                errors[name][voice.name] = [0, 0]  # errors, reference words
            for index, text in enumerate(chosen):
                clip = make_clip(folder, voice, index, text)
                reference = normalise(text)
                order = [("shipped", shipped), ("previous", previous)]
                if index % 2:
                    order.reverse()
                for name, settings in order:
                    clock = time.perf_counter()
                    transcript = transcriber.transcribe(clip, settings)
                    wall[name] += time.perf_counter() - clock
                    duration = transcript.audio_duration_s or 0.0
                    outside[name] += sum(
                        1
                        for segment in transcript.segments
                        if segment.start < 0 or segment.end > duration + 1e-6
                    )
                    wrong = word_errors(reference, normalise(transcript.text))
                    errors[name][voice.name][0] += wrong
                    errors[name][voice.name][1] += len(reference)
                    if name == "shipped":
                        redecoded += sum("collapsed" in note for note in transcript.notes)
                        slowed += sum(note.startswith("fast") for note in transcript.notes)
                        counts = plain.setdefault(voice.name, [0, 0])
                        counts[0] += word_errors(plain_words(text), plain_words(transcript.text))
                        counts[1] += len(plain_words(text))
                    if args.verbose and name == "shipped" and wrong / len(reference) > 0.3:
                        print(f"    {voice.name}#{index} WER {wrong / len(reference):.2f}")
                        print(f"      ref: {text}\n      hyp: {transcript.text}")
            line = "  ".join(
                f"{name} {errors[name][voice.name][0] / errors[name][voice.name][1]:.3f}"
                for name in errors
            )
            print(f"  {voice.name:<13} WER  {line}", flush=True)
    finally:
        if args.clips is None:
            shutil.rmtree(folder, ignore_errors=True)

    def mean_wer(name: str) -> float:
        rates = [wrong / words for wrong, words in errors[name].values()]
        return sum(rates) / len(rates)

    worst_name, worst = max(
        ((voice, wrong / words) for voice, (wrong, words) in errors["shipped"].items()),
        key=lambda pair: pair[1],
    )
    plain_wer = sum(wrong / words for wrong, words in plain.values()) / max(1, len(plain))
    ratio = wall["shipped"] / wall["previous"] if wall["previous"] else 0.0
    checks = [
        (
            f"WER averaged over {len(voices)} settings x {len(chosen)} texts",
            f"{mean_wer('shipped'):.3f} (previous settings {mean_wer('previous'):.3f}; "
            f"lower-cased without punctuation only {plain_wer:.3f})",
            f"<= {TARGET_WER:.2f}",
            mean_wer("shipped") <= TARGET_WER,
        ),
        (
            "WER of the worst setting",
            f"{worst:.3f} ({worst_name})",
            f"<= {TARGET_SETTING_WER:.2f}",
            worst <= TARGET_SETTING_WER,
        ),
        (
            "segments outside the audio",
            f"{outside['shipped']} (previous settings {outside['previous']})",
            "0",
            outside["shipped"] == 0,
        ),
        (
            "wall time, shipped / previous settings",
            f"{ratio:.2f} ({wall['shipped']:.1f}s / {wall['previous']:.1f}s; "
            f"{redecoded} collapsed window(s) decoded again, {slowed} clip(s) slowed)",
            f"<= {TARGET_SLOWDOWN:.2f}",
            ratio <= TARGET_SLOWDOWN,
        ),
    ]
    for figure, value, target, ok in checks:
        print(f"{figure}: {value}  target {target}  {verdict(ok)}")
    missed = [figure for figure, _value, _target, ok in checks if not ok]
    if missed:
        print(f"speech_quality: MISSED {len(missed)} target(s): {'; '.join(missed)}")
        return 1
    print("speech_quality: every target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
