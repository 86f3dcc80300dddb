"""Read the facts of a media file with ffprobe."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas.errors import InvalidInput, Unavailable

__all__ = ["MEDIA_EXTENSIONS", "ProbeResult", "probe", "require_tool"]

VIDEO_EXTENSIONS = frozenset(
    "mp4 m4v mkv mov avi webm mpg mpeg wmv flv ts m2ts mts 3gp ogv vob".split()  # noqa: SIM905
)
AUDIO_EXTENSIONS = frozenset(
    [
        "mp3",
        "m4a",
        "m4b",
        "aac",
        "flac",
        "wav",
        "ogg",
        "oga",
        "opus",
        "wma",
        "aiff",
        "aif",
        "alac",
        "mka",
    ]
)
IMAGE_EXTENSIONS = frozenset(
    ["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "heic", "avif"]
)
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS | IMAGE_EXTENSIONS

# ffprobe names image formats *_pipe / image2; a still has no real duration.
_IMAGE_FORMATS = ("image2", "_pipe", "gif", "webp")
_CONTAINER_TAG_KEYS = (
    "title",
    "artist",
    "album_artist",
    "album",
    "genre",
    "comment",
    "description",
    "synopsis",
    "date",
    "year",
    "language",
)
_TIMEOUT_S = 60


@dataclass(frozen=True)
class ProbeResult:
    """What ffprobe says about one file, reduced to the facts Atlas keeps."""

    media_type: str
    container: str | None
    duration_s: float | None
    bitrate: int | None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    has_video: bool = False
    has_audio: bool = False
    has_subtitles: bool = False
    streams: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def require_tool(name: str) -> str:
    """The path of an external program, or ``Unavailable`` saying how to install it."""
    found = shutil.which(name)
    if found is None:
        package = "espeak-ng" if name == "espeak-ng" else "ffmpeg"
        raise Unavailable(
            f"{name} is not installed; install it with: sudo apt-get install {package}"
        )
    return found


def probe(path: Path) -> ProbeResult:
    """Probe ``path``. Raises ``InvalidInput`` when it is not a readable media file."""
    ffprobe = require_tool("ffprobe")
    try:
        completed = subprocess.run(
            [
                ffprobe,
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
                str(path),
            ],
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"{path}: ffprobe gave up after {_TIMEOUT_S}s") from None
    stderr = completed.stderr.decode("utf-8", "replace").strip()
    if completed.returncode != 0:
        detail = stderr.splitlines()[-1] if stderr else f"ffprobe exit code {completed.returncode}"
        detail = detail.replace(f"{path}: ", "")
        raise InvalidInput(f"{path}: not a readable media file ({detail})")
    try:
        data = json.loads(completed.stdout or b"{}")
    except json.JSONDecodeError:
        raise InvalidInput(f"{path}: ffprobe printed something that is not JSON") from None
    return parse_probe(path, data)


def parse_probe(path: Path, data: dict[str, Any]) -> ProbeResult:
    """Turn ffprobe's JSON into a ``ProbeResult`` (split out to test it on its own)."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    if not fmt and not streams:
        raise InvalidInput(f"{path}: not a readable media file (ffprobe found no streams)")

    video = [s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    subtitles = [s for s in streams if s.get("codec_type") == "subtitle"]
    container = fmt.get("format_name")
    duration = (
        _float(fmt.get("duration"))
        or max((_float(s.get("duration")) or 0.0 for s in streams), default=None)
        or None
    )

    if video and _is_still(container, video[0], duration):
        media_type = "image"
    elif video:
        media_type = "video"
    elif audio:
        media_type = "audio"
    else:
        media_type = "other"

    first_video = video[0] if video else {}
    first_audio = audio[0] if audio else {}
    # Ogg and Opus keep their comments on the stream, not the container.
    tags: dict[str, str] = {}
    for source in [*(s.get("tags") or {} for s in audio[:1]), fmt.get("tags") or {}]:
        tags.update({str(k).lower(): str(v) for k, v in source.items()})
    return ProbeResult(
        media_type=media_type,
        container=_container_name(container, path),
        duration_s=None if media_type == "image" else duration,
        bitrate=_int(fmt.get("bit_rate")),
        video_codec=first_video.get("codec_name"),
        audio_codec=first_audio.get("codec_name"),
        width=_int(first_video.get("width")),
        height=_int(first_video.get("height")),
        has_video=bool(video) and media_type == "video",
        has_audio=bool(audio),
        has_subtitles=bool(subtitles),
        streams=[_stream_summary(s) for s in streams],
        tags={k: v for k, v in tags.items() if k in _CONTAINER_TAG_KEYS},
    )


def _container_name(format_name: str | None, path: Path) -> str | None:
    """One name for the container: ffprobe lists several (``mov,mp4,m4a,3gp,3g2,mj2``);
    prefer the one matching the file's extension, else the first."""
    if not format_name:
        return None
    names = format_name.split(",")
    extension = path.suffix.lower().lstrip(".")
    return extension if extension in names else names[0]


def _is_cover_art(stream: dict[str, Any]) -> bool:
    return bool((stream.get("disposition") or {}).get("attached_pic"))


def _is_still(container: str | None, stream: dict[str, Any], duration: float | None) -> bool:
    if container and any(marker in container for marker in _IMAGE_FORMATS):
        return stream.get("nb_frames") in (None, "1") or container.endswith("_pipe")
    return False


def _stream_summary(stream: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "index",
        "codec_type",
        "codec_name",
        "width",
        "height",
        "channels",
        "sample_rate",
        "bit_rate",
        "duration",
    )
    summary = {key: stream[key] for key in keep if key in stream}
    language = (stream.get("tags") or {}).get("language")
    if language:
        summary["language"] = language
    return summary


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "N/A") else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None
