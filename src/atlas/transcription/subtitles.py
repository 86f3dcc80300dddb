"""Subtitles as transcripts: sidecar files (.srt, .vtt) and embedded text streams.

A subtitle is what someone already wrote down for the media, usually better
than a model's guess and free to read, so Atlas prefers it to running Whisper.
"""

from __future__ import annotations

import html
import re
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from atlas.errors import InvalidInput
from atlas.media.probe import require_tool
from atlas.transcription.whisper import Transcript, TranscriptSegment

__all__ = [
    "TEXT_SUBTITLE_CODECS",
    "extract_embedded",
    "parse_subtitles",
    "pick_stream",
    "read_sidecar",
]

#: Embedded subtitle codecs that hold text (bitmap ones, such as PGS and DVD
#: subtitles, would need OCR and are left to Whisper).
TEXT_SUBTITLE_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_CUE_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]+>|\{\\[^}]*\}")
_MAX_BYTES = 20 << 20
_TIMEOUT_S = 300
# ISO 639-2 codes in containers -> Whisper's two-letter codes, for the common ones.
_THREE_TO_TWO = {
    "eng": "en", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es", "ita": "it",
    "por": "pt", "nld": "nl", "dut": "nl", "rus": "ru", "jpn": "ja", "zho": "zh", "chi": "zh",
    "kor": "ko", "swe": "sv", "nor": "no", "dan": "da", "fin": "fi", "pol": "pl", "tur": "tr",
    "ara": "ar", "hin": "hi", "ces": "cs", "cze": "cs", "ell": "el", "gre": "el", "heb": "he",
    "hun": "hu", "ukr": "uk",
}  # fmt: skip


def language_code(tag: str | None) -> str | None:
    """``eng`` / ``en`` / ``en-GB`` -> ``en``; ``None`` for ``und`` or nothing."""
    if not tag:
        return None
    base = tag.strip().lower().replace("_", "-").split("-")[0]
    if base in ("", "und", "unk", "mis", "zxx"):
        return None
    return _THREE_TO_TWO.get(base, base if len(base) == 2 else None)


def parse_subtitles(text: str) -> list[TranscriptSegment]:
    """Cues of an SRT or WebVTT document, in order, with markup removed.

    Cue numbers, VTT headers, NOTE/STYLE/REGION blocks and cue settings are
    ignored; repeated lines of karaoke-style cues are kept once.
    """
    segments: list[TranscriptSegment] = []
    for block in re.split(r"\r?\n\s*\r?\n", text.replace("\ufeff", "")):
        lines = [line for line in block.strip().splitlines() if line.strip()]
        timing_at = next((i for i, line in enumerate(lines) if _CUE_TIMING.match(line)), None)
        if timing_at is None:
            continue
        match = _CUE_TIMING.match(lines[timing_at])
        assert match is not None
        start = _seconds(match.groups()[:4])
        end = _seconds(match.groups()[4:])
        words = " ".join(_clean(line) for line in lines[timing_at + 1 :])
        words = " ".join(words.split())
        if not words:
            continue
        if segments and segments[-1].text == words:
            previous = segments[-1]
            segments[-1] = TranscriptSegment(previous.start, max(previous.end, end), words)
            continue
        segments.append(TranscriptSegment(round(start, 3), round(end, 3), words))
    return segments


def read_sidecar(path: Path, *, language: str | None) -> Transcript | None:
    """A transcript from a subtitle file; ``None`` when it is gone or has no cues."""
    clock = time.perf_counter()
    try:
        if path.stat().st_size > _MAX_BYTES:
            return None
        raw = path.read_bytes()
    except OSError:
        return None
    segments = parse_subtitles(_decode(raw))
    if not segments:
        return None
    return _transcript(segments, "sidecar", language, path.name, clock)


def pick_stream(
    streams: Sequence[dict[str, Any]] | None, language: str | None
) -> dict[str, Any] | None:
    """The embedded text subtitle stream to use: the asked language, else English, else first."""
    text_streams = [
        stream
        for stream in streams or []
        if stream.get("codec_type") == "subtitle"
        and stream.get("codec_name") in TEXT_SUBTITLE_CODECS
    ]
    if not text_streams:
        return None
    for wanted in (language, "en"):
        for stream in text_streams:
            if wanted and language_code(stream.get("language")) == wanted:
                return stream
    return text_streams[0]


def extract_embedded(path: Path, stream: dict[str, Any]) -> Transcript | None:
    """A transcript from an embedded text subtitle stream, converted to SRT by ffmpeg.

    ``None`` when the stream holds no cues; ``InvalidInput`` when ffmpeg cannot read it.
    """
    clock = time.perf_counter()
    ffmpeg = require_tool("ffmpeg")
    index = stream.get("index")
    command = [
        ffmpeg, "-nostdin", "-v", "error", "-i", str(path),
        "-map", f"0:{index}", "-c:s", "srt", "-f", "srt", "-",
    ]  # fmt: skip
    try:
        completed = subprocess.run(command, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"{path}: reading subtitle stream {index} took too long") from None
    if completed.returncode != 0:
        lines = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = lines[-1] if lines else f"ffmpeg exit code {completed.returncode}"
        raise InvalidInput(f"{path}: subtitle stream {index} cannot be read ({detail})")
    segments = parse_subtitles(_decode(completed.stdout))
    if not segments:
        return None
    codec = stream.get("codec_name", "?")
    tag = stream.get("language")
    detail = f"stream {index} ({codec}{', ' + tag if tag else ''})"
    return _transcript(segments, "embedded", language_code(tag), detail, clock)


def _transcript(
    segments: list[TranscriptSegment],
    source: str,
    language: str | None,
    detail: str,
    clock: float,
) -> Transcript:
    return Transcript(
        text=" ".join(segment.text for segment in segments),
        segments=segments,
        source=source,
        language=language,
        source_detail=detail,
        wall_time_s=round(time.perf_counter() - clock, 4),
    )


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "utf-16" and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        return text
    return raw.decode("cp1252", errors="replace")


def _clean(line: str) -> str:
    return html.unescape(_TAG.sub("", line)).replace("\\N", " ").strip()


def _seconds(parts: Iterable[str | None]) -> float:
    hours, minutes, seconds, millis = (part or "0" for part in parts)
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000
