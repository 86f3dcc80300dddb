"""Files that travel beside a media file: subtitles (.srt, .vtt) and Kodi/Jellyfin .nfo."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SIDECAR_EXTENSIONS", "NfoMetadata", "Sidecar", "find_sidecars", "read_nfo"]

SIDECAR_EXTENSIONS = frozenset({"srt", "vtt", "nfo"})
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$", re.IGNORECASE)
_NFO_ROOTS = ("movie", "episodedetails", "musicvideo", "tvshow", "video", "album")
_MAX_NFO_BYTES = 1 << 20


@dataclass(frozen=True)
class Sidecar:
    path: Path
    kind: str  # 'subtitle' | 'nfo'
    format: str  # 'srt' | 'vtt' | 'nfo'
    language: str | None
    size_bytes: int
    mtime: float


@dataclass(frozen=True)
class NfoMetadata:
    """The fields of a Kodi/Jellyfin .nfo that Atlas uses."""

    title: str | None = None
    description: str | None = None
    year: int | None = None
    runtime_min: float | None = None
    rating: float | None = None
    external_id: str | None = None
    genres: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    artist: str | None = None


def find_sidecars(media_path: Path) -> list[Sidecar]:
    """Sidecars named after ``media_path``: ``stem.srt``, ``stem.en.vtt``, ``stem.nfo``."""
    stem = media_path.stem
    found: list[Sidecar] = []
    try:
        siblings = sorted(media_path.parent.iterdir())
    except OSError:
        return found
    for candidate in siblings:
        suffix = candidate.suffix.lower().lstrip(".")
        if suffix not in SIDECAR_EXTENSIONS or candidate == media_path:
            continue
        base = candidate.name[: -len(candidate.suffix)]
        language = None
        if base != stem:
            prefix, _, tail = base.rpartition(".")
            if prefix != stem or not _LANGUAGE.match(tail):
                continue
            language = tail.lower()
        try:
            stat = candidate.stat()
        except OSError:
            continue
        if not candidate.is_file():
            continue
        found.append(
            Sidecar(
                path=candidate,
                kind="nfo" if suffix == "nfo" else "subtitle",
                format=suffix,
                language=language,
                size_bytes=stat.st_size,
                mtime=stat.st_mtime,
            )
        )
    return found


def read_nfo(path: Path) -> NfoMetadata | None:
    """Parse an .nfo file; ``None`` when it is not Kodi XML (some hold only a URL)."""
    try:
        if path.stat().st_size > _MAX_NFO_BYTES:
            return None
        root = ElementTree.fromstring(path.read_bytes())
    except (OSError, ElementTree.ParseError):
        return None
    if root.tag.lower() not in _NFO_ROOTS:
        return None

    def text(*names: str) -> str | None:
        for name in names:
            node = root.find(name)
            if node is not None and node.text and node.text.strip():
                return node.text.strip()
        return None

    def texts(name: str) -> list[str]:
        values: list[str] = []
        for node in root.findall(name):
            for part in (node.text or "").split("/"):
                if part.strip() and part.strip() not in values:
                    values.append(part.strip())
        return values

    external_id = None
    for node in root.findall("uniqueid"):
        if node.text and node.text.strip():
            kind = node.get("type", "id")
            external_id = f"{kind}:{node.text.strip()}"
            if node.get("default") == "true":
                break
    if external_id is None and text("imdbid", "id"):
        external_id = f"imdb:{text('imdbid', 'id')}"

    return NfoMetadata(
        title=text("title"),
        description=text("plot", "outline", "review"),
        year=_int(text("year", "premiered")),
        runtime_min=_float(text("runtime")),
        rating=_rating(text("userrating", "rating")),
        external_id=external_id,
        genres=texts("genre"),
        tags=texts("tag"),
        artist=text("artist", "director"),
    )


def _int(value: str | None) -> int | None:
    if not value:
        return None
    match = re.match(r"\d{4}", value)
    return int(match.group()) if match else None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _rating(value: str | None) -> float | None:
    number = _float(value)
    if number is None or number < 0:
        return None
    # Kodi rates out of 10; Atlas rates 0..5 in halves.
    return min(5.0, round(number) / 2) if number > 5 else round(number * 2) / 2
