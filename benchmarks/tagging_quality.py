"""Tagging quality benchmark, and the transcription check that goes with it.

    PYTHONPATH=src python benchmarks/tagging_quality.py [--data PATH] [--model NAME]

Transcription check: espeak-ng reads 20 movie overviews from the TMDB sample;
``smart-transcribe``'s service (ingest, then one ``transcribe`` task per file
through the dispatcher, as the CLI does) transcribes them; the word error rate
against the overviews and the real-time factor are printed. Target: WER <= 0.25
with the bundled tiny.en.

Honesty notes. The 20 test overviews are every 150th row with an overview.
The espeak-ng voice and speed (en-us, 150 words per minute) were chosen on a
separate development sample (``--dev``: 10 other rows, between the test rows),
never on the test rows; Whisper decodes with Atlas's defaults (beam 5, VAD on,
no initial prompt). Before scoring, both texts are normalised the same way:
lower case, numbers written as spoken words, punctuation removed.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tmdb-movies-3000.csv"

VOICE = "en-us"
WORDS_PER_MINUTE = 150
WER_TARGET = 0.25
TEST_COUNT = 20
DEV_COUNT = 10


# --- data ------------------------------------------------------------------------


def load_movies(path: Path) -> list[dict[str, str]]:
    """The TMDB rows that have an overview, in file order."""
    if not path.is_file():
        raise SystemExit(f"tagging_quality: data file {path} not found; pass --data PATH")
    with path.open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if (row.get("overview") or "").strip()]


def speech_samples(movies: list[dict[str, str]], *, dev: bool) -> list[dict[str, str]]:
    """Test: every ``len/20``-th row. Dev: rows half-way between them (disjoint)."""
    step = len(movies) // TEST_COUNT
    if dev:
        return movies[step // 2 :: step * 2][:DEV_COUNT]
    return movies[::step][:TEST_COUNT]


# --- word error rate ---------------------------------------------------------------

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_NUMBER = re.compile(r"\$?\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th|s)?\b")


def _under_100(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])


def _cardinal(n: int) -> str:
    if n < 100:
        return _under_100(n)
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + ("" if rest == 0 else " " + _under_100(rest))
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            high, rest = divmod(n, size)
            return f"{_cardinal(high)} {name}" + ("" if rest == 0 else " " + _cardinal(rest))
    raise AssertionError("unreachable")


def _year(n: int) -> str:
    if 1100 <= n <= 1999 or 2010 <= n <= 2099:
        high, low = divmod(n, 100)
        if low == 0:
            return f"{_under_100(high)} hundred"
        return f"{_under_100(high)} " + (f"oh {_ONES[low]}" if low < 10 else _under_100(low))
    return _cardinal(n)


def _ordinal(n: int) -> str:
    *head, last = _cardinal(n).split()
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _spoken(match: re.Match[str]) -> str:
    token = match.group(0).replace(",", "")
    dollars = token.startswith("$")
    token = token.lstrip("$")
    if ordinal := re.fullmatch(r"(\d+)(st|nd|rd|th)", token):
        words = _ordinal(int(ordinal.group(1)))
    elif re.fullmatch(r"\d{4}s", token):
        *head, last = _year(int(token[:-1])).split()
        words = " ".join([*head, last[:-1] + "ies" if last.endswith("y") else last + "s"])
    elif token.endswith("s"):
        words = _cardinal(int(token[:-1])) + "s"
    elif "." in token:
        whole, fraction = token.split(".", 1)
        words = f"{_cardinal(int(whole))} point " + " ".join(_ONES[int(d)] for d in fraction)
    elif len(token) == 4:
        words = _year(int(token))
    else:
        words = _cardinal(int(token))
    return f" {words}{' dollars' if dollars else ''} "


def normalise(text: str) -> str:
    """Lower case, numbers as spoken words, no punctuation, single spaces."""
    text = text.lower().replace("%", " percent").replace("&", " and ")
    text = re.sub(r"\$(\d[\d,.]*)\s+(thousand|million|billion)\b", r"\1 \2 dollars", text)
    text = _NUMBER.sub(_spoken, text)
    text = re.sub(r"[’'`]", "", text)
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    return " ".join(text.split())


# --- the transcription check ---------------------------------------------------------


@dataclass(frozen=True)
class TranscriptionCheck:
    files: int
    model: str
    device: str
    word_error_rate: float
    audio_s: float
    wall_s: float
    mean_file_rtf: float
    end_to_end_s: float

    @property
    def real_time_factor(self) -> float:
        return self.wall_s / self.audio_s


def _speak(text: str, target: Path, voice: str, speed: int) -> None:
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(target), text],
        check=True,
        capture_output=True,
        timeout=120,
    )


def transcription_check(
    data: Path,
    *,
    dev: bool = False,
    model: str | None = None,
    voice: str = VOICE,
    speed: int = WORDS_PER_MINUTE,
) -> TranscriptionCheck:
    """Speak overviews with espeak-ng, transcribe them with Atlas, score the transcripts."""
    import jiwer

    from atlas.app import open_atlas
    from atlas.config import load_settings
    from atlas.media import media_detail
    from atlas.transcription import transcribe_library

    samples = speech_samples(load_movies(data), dev=dev)
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as scratch:
        folder = Path(scratch) / "speech"
        folder.mkdir()
        references: dict[str, str] = {}
        for number, movie in enumerate(samples):
            path = folder / f"{number:02d}-{movie['id']}.wav"
            _speak(movie["overview"], path, voice, speed)
            references[str(path)] = movie["overview"]

        # A fresh home, no environment: the defaults, as a new user has them.
        settings = load_settings(
            home=Path(scratch) / "home",
            overrides={"auto_process": False, "transcription.model": model},
            environ={},
        ).settings
        atlas = open_atlas(settings)
        try:
            clock = time.perf_counter()
            report = transcribe_library(atlas.dispatcher, paths=[folder])
            end_to_end = time.perf_counter() - clock
            if report.failed:
                reasons = "; ".join(item.error or "?" for item in report.failed)
                raise SystemExit(f"tagging_quality: transcription failed: {reasons}")
            heard = {
                item.path: (media_detail(atlas.engine, item.media_id).transcript or {})["text"]
                for item in report.items
                if item.media_id is not None
            }
        finally:
            atlas.close()

    results = [item.result or {} for item in report.items]
    paths = sorted(references)
    wer = jiwer.wer(
        [normalise(references[path]) for path in paths],
        [normalise(heard.get(path, "")) for path in paths],
    )
    rtfs = [r["real_time_factor"] for r in results if r.get("real_time_factor") is not None]
    return TranscriptionCheck(
        files=len(paths),
        model=str(results[0].get("model")),
        device=_device(results),
        word_error_rate=float(wer),
        audio_s=sum(r.get("audio_duration_s") or 0.0 for r in results),
        wall_s=sum(r.get("wall_time_s") or 0.0 for r in results),
        mean_file_rtf=sum(rtfs) / len(rtfs),
        end_to_end_s=end_to_end,
    )


def _device(results: list[dict[str, object]]) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    first = next((r for r in results if r.get("device")), {})
    where = f"{cpus} CPU cores" if first.get("device") == "cpu" else "GPU"
    return f"{first.get('device')} {first.get('compute_type')}, {where}"


# --- the tagging check ------------------------------------------------------------------
#
# The automatic tagger's genre benchmark (half the movies tagged with their real
# genres, the other half tagged from title + overview; micro-F1, precision and
# recall per source and combined; target micro-F1 >= 0.65) goes here, as
# ``tagging_check(data) -> ...``, and is run by ``main()`` before the
# transcription check.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the TMDB movies CSV")
    parser.add_argument(
        "--dev",
        action="store_true",
        help="run the transcription check on the development sample (for choosing settings)",
    )
    parser.add_argument("--model", help="a Whisper model other than the bundled tiny.en")
    parser.add_argument("--voice", default=VOICE, help="espeak-ng voice (choose it with --dev)")
    parser.add_argument(
        "--speed", type=int, default=WORDS_PER_MINUTE, help="espeak-ng words per minute"
    )
    args = parser.parse_args(argv)

    # Tagging check: see the section above.

    check = transcription_check(
        args.data, dev=args.dev, model=args.model, voice=args.voice, speed=args.speed
    )
    sample = "development sample" if args.dev else "test sample"
    print(
        f"transcription WER ({check.model}, {check.files} espeak-ng overviews, {sample}): "
        f"{check.word_error_rate:.3f} (target <= {WER_TARGET})"
    )
    print(
        f"transcription real-time factor: {check.real_time_factor:.3f} "
        f"({check.wall_s:.1f} s for {check.audio_s:.1f} s of audio on {check.device}; "
        f"{1 / check.real_time_factor:.1f}x real time; mean per file {check.mean_file_rtf:.3f})"
    )
    print(
        f"transcription end to end (ingest, model load, {check.files} tasks): "
        f"{check.end_to_end_s:.1f} s"
    )
    return 0 if check.word_error_rate <= WER_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
