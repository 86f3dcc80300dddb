"""Build the sample library: real video and audio files made with ffmpeg and espeak-ng.

The items (titles, genres, tags, synopses written for Atlas) ship in
``library.json``. Each synopsis is spoken by espeak-ng into the file's audio
track, so transcription has real speech to hear. Some items get subtitle
sidecars, a few an .nfo, and one deliberately corrupt file shows how failures
are reported.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from atlas.errors import Unavailable
from atlas.media.probe import require_tool

__all__ = ["CORRUPT_FILE_NAME", "DemoItem", "DemoLibrary", "build_library", "load_items"]

CORRUPT_FILE_NAME = "broken-recording.mp4"
_VIDEO_SOURCES = (
    "testsrc2",
    "mandelbrot",
    "life=ratio=0.2:mold=10",
    "cellauto=rule=110",
    "rgbtestsrc",
    "smptebars",
)
_VIDEO_CONTAINERS = ("mp4", "mkv", "mov")
_AUDIO_FORMATS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "m4a": ["-c:a", "aac", "-b:a", "64k"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "2"],
    "flac": ["-c:a", "flac"],
    "opus": ["-c:a", "libopus", "-b:a", "32k"],
    "wav": ["-c:a", "pcm_s16le"],
}
_NFO_EVERY = 12


@dataclass(frozen=True)
class DemoItem:
    slug: str
    title: str
    kind: str
    year: int
    genres: list[str]
    tags: list[str]
    synopsis: str
    subtitles: bool = False
    artist: str | None = None


@dataclass
class DemoLibrary:
    folder: Path
    files: list[Path] = field(default_factory=list)
    corrupt: Path | None = None


def load_items() -> list[DemoItem]:
    """The sample items shipped with Atlas."""
    text = resources.files("atlas.demo").joinpath("library.json").read_text(encoding="utf-8")
    return [DemoItem(**item) for item in json.loads(text)["items"]]


def build_library(
    folder: Path,
    *,
    items: Sequence[DemoItem] | None = None,
    workers: int = 2,
    on_file: Callable[[Path], None] | None = None,
) -> DemoLibrary:
    """Write the sample library into ``folder`` (videos/, audio/); existing files are reused.

    Raises ``Unavailable`` when ffmpeg or espeak-ng is missing.
    """
    ffmpeg = require_tool("ffmpeg")
    espeak = require_tool("espeak-ng")
    chosen = list(items) if items is not None else load_items()
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    library = DemoLibrary(folder=folder)

    def make(index_item: tuple[int, DemoItem]) -> Path:
        index, item = index_item
        path = _target(folder, index, item)
        if not path.exists():
            _render(ffmpeg, espeak, index, item, path)
        if on_file is not None:
            on_file(path)
        return path

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        library.files = list(pool.map(make, enumerate(chosen)))

    corrupt = folder / "videos" / CORRUPT_FILE_NAME
    # An MP4 header followed by noise: it looks like media, and is not.
    noise = random.Random(7).randbytes(4096)
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + noise)
    library.corrupt = corrupt
    return library


def _target(folder: Path, index: int, item: DemoItem) -> Path:
    if item.kind == "video":
        extension = _VIDEO_CONTAINERS[index % len(_VIDEO_CONTAINERS)]
        return folder / "videos" / f"{item.slug}.{extension}"
    extension = list(_AUDIO_FORMATS)[index % len(_AUDIO_FORMATS)]
    return folder / "audio" / f"{item.slug}.{extension}"


def _render(ffmpeg: str, espeak: str, index: int, item: DemoItem, path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="atlas-demo-") as scratch:
        speech = Path(scratch) / "speech.wav"
        voice = ("en-us", "en-gb", "en-us+f3", "en-us+m3")[index % 4]
        _run([espeak, "-v", voice, "-s", "150", "-w", str(speech), item.synopsis])
        with wave.open(str(speech)) as handle:
            seconds = handle.getnframes() / float(handle.getframerate())
        metadata = [
            "-metadata",
            f"title={item.title}",
            "-metadata",
            f"date={item.year}",
            "-metadata",
            f"genre={item.genres[0]}",
        ]
        if item.artist:
            metadata += ["-metadata", f"artist={item.artist}"]
        partial = path.with_name(f".{path.name}.part{path.suffix}")
        if item.kind == "video":
            source = _VIDEO_SOURCES[index % len(_VIDEO_SOURCES)]
            command = [
                ffmpeg,
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"{source}{':' if '=' in source else '='}size=320x180:rate=12",
                "-i",
                str(speech),
                "-t",
                f"{seconds + 0.5:.2f}",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-ar",
                "22050",
                "-shortest",
                *metadata,
                str(partial),
            ]
        else:
            codec = _AUDIO_FORMATS[path.suffix.lstrip(".")]
            command = [
                ffmpeg,
                "-v",
                "error",
                "-y",
                "-i",
                str(speech),
                *codec,
                *metadata,
                str(partial),
            ]
        _run(command)
        partial.replace(path)
    if item.subtitles:
        path.with_suffix(".srt").write_text(_srt(item.synopsis, seconds), encoding="utf-8")
    if index % _NFO_EVERY == 0:
        path.with_suffix(".nfo").write_text(_nfo(item), encoding="utf-8")


def _run(command: list[str]) -> None:
    completed = subprocess.run(command, capture_output=True, timeout=300, check=False)
    if completed.returncode != 0:
        detail = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise Unavailable(f"{Path(command[0]).name} failed: {detail[-1] if detail else '?'}")


def _srt(text: str, seconds: float) -> str:
    """Subtitles for the synopsis, one cue per sentence, timed by word count."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    words = [len(sentence.split()) for sentence in sentences]
    total = sum(words) or 1
    cues, start = [], 0.0
    for number, (sentence, count) in enumerate(zip(sentences, words, strict=True), start=1):
        end = start + seconds * count / total
        cues.append(f"{number}\n{_stamp(start)} --> {_stamp(end)}\n{sentence}\n")
        start = end
    return "\n".join(cues)


def _stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def _nfo(item: DemoItem) -> str:
    genres = "".join(f"  <genre>{escape(genre)}</genre>\n" for genre in item.genres)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<movie>\n'
        f"  <title>{escape(item.title)}</title>\n  <year>{item.year}</year>\n"
        f"{genres}</movie>\n"
    )
