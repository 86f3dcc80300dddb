"""The embedding document: the one text that represents a media item to a model.

:func:`build_document` is deterministic (same facts, same text, same hash), so an
item is re-embedded only when what Atlas knows about it changed, or the model did.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from atlas.media.tags import SOURCE_RANK, Tag, normalise_tag

__all__ = [
    "DOCUMENT_VERSION",
    "DocumentInput",
    "MediaDocument",
    "build_document",
    "transcript_excerpt",
]

#: Part of every hash: bump it when the layout changes and every item is re-embedded.
DOCUMENT_VERSION = "atlas-document-v1"
#: Confirmed (user/rule) tags named in the document, at most.
MAX_CONFIRMED_TAGS = 24
#: Automatic tags named in the document, at most, and the confidence they need.
MAX_AUTO_TAGS = 10
MIN_AUTO_CONFIDENCE = 0.5
MAX_DESCRIPTION_CHARS = 2000
#: Transcripts up to this length are used whole; longer ones as three excerpts.
TRANSCRIPT_CHARS = 1500
_EXCERPTS = 3


@dataclass(frozen=True)
class DocumentInput:
    """What Atlas knows about a media item that can describe it in words."""

    media_type: str
    title: str | None = None
    year: int | None = None
    artist: str | None = None
    genre: str | None = None
    description: str | None = None
    tags: Sequence[Tag] = ()
    transcript: str | None = None
    duration_s: float | None = None
    runtime_min: float | None = None
    container: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    has_subtitles: bool = False
    container_tags: Mapping[str, str] | None = None


@dataclass(frozen=True)
class MediaDocument:
    """The text of a media item, its hash, and the facts search filters need."""

    text: str
    hash: str
    #: False when the item has no words at all (no title, tags, genre,
    #: description or transcript): there is nothing to embed.
    embeddable: bool
    media_type: str
    #: Normalised genre names (the ``genre`` column and genre tags), for filters.
    genres: tuple[str, ...] = field(default_factory=tuple)


def build_document(item: DocumentInput) -> MediaDocument:
    """The embedding document of one media item.

    Lines, most telling first, because models read only so far (all-MiniLM-L6-v2
    stops after 256 word pieces and drops the rest):

    1. title and year;
    2. ``Genre:`` the genre column and confirmed genre tags;
    3. ``Tags:`` confirmed tags (source ``user`` or ``rule``), up to 24 — early,
       so they always count, and weigh more than automatic ones;
    4. the description (up to 2,000 characters);
    5. artist and album;
    6. ``Also tagged:`` automatic tags with confidence >= 0.5, up to 10, most
       confident first — after the description, so they count for less;
    7. ``Media:`` the container facts that speak of content: type, length and
       language (not codecs or resolution, which whole libraries share);
    8. ``Transcript:`` the transcript. Up to 1,500 characters it is used whole;
       a longer one is *truncated to three excerpts* of ~500 characters, from its
       start, middle and end, cut at word boundaries and joined by `` … ``, so the
       document speaks for the whole recording, not its first minute. (Lexical
       search indexes the full transcript.)

    Tags within a line are ordered by source, then alphabetically, so the text
    does not depend on the order rows come back from the database.
    """
    confirmed = sorted(
        (tag for tag in item.tags if tag.source != "auto"),
        key=lambda tag: (-SOURCE_RANK.get(tag.source, 0), _norm(tag.tag)),
    )
    automatic = sorted(
        (
            tag
            for tag in item.tags
            if tag.source == "auto" and tag.confidence >= MIN_AUTO_CONFIDENCE
        ),
        key=lambda tag: (-tag.confidence, _norm(tag.tag)),
    )
    genres = _unique(
        ([item.genre] if item.genre else []) + [t.tag for t in confirmed if t.kind == "genre"]
    )
    topics = _unique([t.tag for t in confirmed if t.kind != "genre"], exclude=genres)
    auto_names = _unique([t.tag for t in automatic], exclude=genres + topics)

    lines: list[str] = []
    title = _clean(item.title)
    if title:
        lines.append(f"{title} ({item.year})" if item.year else title)
    if genres:
        lines.append("Genre: " + ", ".join(genres))
    if topics:
        lines.append("Tags: " + ", ".join(topics[:MAX_CONFIRMED_TAGS]))
    description = _clean(item.description)
    if description:
        lines.append(_cut(description, MAX_DESCRIPTION_CHARS))
    people = []
    if _clean(item.artist):
        people.append(f"By {_clean(item.artist)}.")
    album = _clean((item.container_tags or {}).get("album"))
    if album:
        people.append(f"Album: {album}.")
    if people:
        lines.append(" ".join(people))
    if auto_names:
        lines.append("Also tagged: " + ", ".join(auto_names[:MAX_AUTO_TAGS]))
    transcript = _clean(item.transcript)
    has_words = bool(lines) or bool(transcript)
    facts = _media_facts(item)
    if facts:
        lines.append("Media: " + facts)
    if transcript:
        lines.append("Transcript: " + transcript_excerpt(transcript))

    text = "\n".join(lines)
    digest = hashlib.sha256(f"{DOCUMENT_VERSION}\n{text}".encode()).hexdigest()
    genre_norms = tuple(sorted({_norm(g) for g in genres}))
    return MediaDocument(
        text=text,
        hash=digest,
        embeddable=has_words,
        media_type=item.media_type,
        genres=genre_norms,
    )


def transcript_excerpt(text: str, budget: int = TRANSCRIPT_CHARS) -> str:
    """The transcript whole if it fits ``budget``, else three excerpts joined by `` … ``."""
    text = " ".join(text.split())
    if len(text) <= budget:
        return text
    size = budget // _EXCERPTS
    last_start = len(text) - size
    parts = []
    for index in range(_EXCERPTS):
        start = round(index * last_start / (_EXCERPTS - 1))
        parts.append(_window(text, start, size))
    return " … ".join(parts)


def _window(text: str, start: int, size: int) -> str:
    """About ``size`` characters from ``start``, widened/narrowed to whole words."""
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if space != -1 and space < start + size // 2 else start
    end = min(len(text), start + size)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    return text[start:end].strip()


def _media_facts(item: DocumentInput) -> str:
    # Only facts that say something about the content. Codecs, containers and
    # resolutions are shared by whole libraries: in a short document they would
    # make every file look like every other file of the same format.
    facts = [item.media_type]
    if item.duration_s:
        facts.append(_length(item.duration_s))
    elif item.runtime_min:
        facts.append(_length(item.runtime_min * 60))
    language = _clean((item.container_tags or {}).get("language"))
    if language and language.lower() not in ("und", "unknown"):
        facts.append(f"language {language}")
    # A bare media type says nothing a filter does not: leave it out.
    return ", ".join(facts) if len(facts) > 1 else ""


def _length(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} s"
    return f"{round(seconds / 60)} min"


def _clean(value: str | None) -> str:
    return " ".join(value.split()) if value else ""


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    space = text.rfind(" ", 0, limit)
    return text[: space if space > 0 else limit] + " …"


@functools.lru_cache(maxsize=65536)
def _norm(tag: str) -> str:
    # Libraries repeat the same few thousand tags; normalising is the costly part.
    return normalise_tag(tag)


def _unique(names: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    seen = {_norm(name) for name in exclude}
    result = []
    for name in names:
        norm = _norm(name)
        if norm and norm not in seen:
            seen.add(norm)
            result.append(" ".join(name.split()))
    return result
