"""Tags of media items: normalisation and storage.

A tag is stored once per media item under its normalised form; the spelling it
first arrived with is kept for display. Sources rank ``user`` > ``rule`` > ``auto``:
a weaker source never overwrites a stronger one.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, update

from atlas.db import utcnow
from atlas.db.tables import media_tags
from atlas.errors import InvalidInput

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "SOURCE_RANK",
    "Tag",
    "check_text",
    "clean_tag",
    "has_control_characters",
    "library_kinds",
    "normalise_tag",
    "parse_tag_list",
    "tags_by_media",
    "upsert_tags",
]

MAX_TAG_LENGTH = 100
#: The most tags one item may be given at once: by the user (``--tags``,
#: ``media-tags add``) or by one column of a catalogue row.
MAX_TAGS = 100
SOURCE_RANK = {"auto": 0, "rule": 1, "user": 2}
_SPACES = re.compile(r"\s+")
#: Control characters (Unicode category Cc) and lone surrogates (Cs); with line breaks
#: and tabs allowed.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class Tag:
    """One tag of an item: as stored, as predicted, or as a rule sets it.

    ``norm`` is the comparable form (:func:`normalise_tag` of ``tag`` unless given,
    e.g. as read from a stored row). The one tag type of Atlas: the tagger predicts
    it, rules act on it, feedback records it (:meth:`to_json`).
    """

    tag: str
    kind: str = "topic"
    source: str = "user"
    confidence: float = 1.0
    explanation: str | None = None
    norm: str = ""

    def __post_init__(self) -> None:
        if not self.norm:
            object.__setattr__(self, "norm", normalise_tag(self.tag))

    def to_json(self) -> dict[str, Any]:
        """As feedback rows and rule applications record it (no explanation)."""
        return {
            "tag": self.tag,
            "norm": self.norm,
            "kind": self.kind,
            "source": self.source,
            "confidence": round(float(self.confidence), 4),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tag:
        """A tag recorded by :meth:`to_json` (a missing source is ``auto``: a prediction)."""
        return cls(
            tag=data["tag"],
            norm=data.get("norm") or normalise_tag(data["tag"]),
            kind=data.get("kind", "topic"),
            source=data.get("source", "auto"),
            confidence=float(data.get("confidence", 1.0)),
            explanation=data.get("explanation"),
        )


@functools.lru_cache(maxsize=1 << 16)
def normalise_tag(tag: str) -> str:
    """The comparable form of a tag: NFKC, case-folded, single spaces, trimmed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", tag).casefold()).strip()


def clean_tag(tag: str) -> str:
    """A tag as displayed: NFC, single spaces, trimmed. Raises ``InvalidInput`` if unusable."""
    cleaned = _SPACES.sub(" ", unicodedata.normalize("NFC", tag)).strip()
    if not cleaned:
        raise InvalidInput("a tag cannot be empty")
    if len(cleaned) > MAX_TAG_LENGTH:
        raise InvalidInput(
            f"tag {cleaned[:30]!r}... is {len(cleaned)} characters long; "
            f"the limit is {MAX_TAG_LENGTH}"
        )
    if any(unicodedata.category(char).startswith("C") for char in cleaned):
        raise InvalidInput(f"tag {cleaned[:30]!r} contains control characters")
    return cleaned


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character (line breaks and tabs included)."""
    return _CONTROL.search(text) is not None


def check_text(value: str, *, what: str, limit: int, multiline: bool = False) -> str:
    """A descriptive text (title, description, ...) as stored; ``what`` names it in errors.

    One line: NFC, single spaces, trimmed. ``multiline`` (descriptions): trimmed,
    line breaks kept (``\\r\\n`` read as ``\\n``), tabs allowed. Raises
    ``InvalidInput`` when it is empty, longer than ``limit`` or holds control characters
    (C0/C1 controls, lone surrogates). Invisible format characters that real texts
    carry (soft hyphens, the joiners of emoji, right-to-left marks) are allowed here,
    unlike in tags, where they would make two spellings of one tag look alike.
    """
    if multiline:
        cleaned = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    else:
        cleaned = " ".join(unicodedata.normalize("NFC", value).split())
    if not cleaned:
        raise InvalidInput(f"{what} cannot be empty")
    if len(cleaned) > limit:
        raise InvalidInput(f"{what} is {len(cleaned):,} characters long; the limit is {limit:,}")
    if (_CONTROL_IN_LINES if multiline else _CONTROL).search(cleaned):
        raise InvalidInput(f"{what} contains control characters")
    return cleaned


def parse_tag_list(value: str | Sequence[str] | None) -> list[str]:
    """Tags from a JSON list, a comma-separated string or a sequence; deduplicated.

    Keeps the first spelling of each tag. Raises ``InvalidInput`` for an empty or
    over-long tag.
    """
    if value is None:
        return []
    items: Iterable[str]
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError:
                raise InvalidInput(f"tag list {text[:40]!r} is not valid JSON") from None
            items = [_name_of(item) for item in loaded]
        else:
            items = text.split(",")
    else:
        items = [_name_of(item) for item in value]
    result: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not str(item).strip():
            continue
        tag = clean_tag(str(item))
        if normalise_tag(tag) not in seen:
            seen.add(normalise_tag(tag))
            result.append(tag)
    return result


def _name_of(item: object) -> str:
    # TMDB-style lists hold {"id": ..., "name": ...} objects.
    if isinstance(item, dict):
        return str(item.get("name", ""))
    return str(item)


def upsert_tags(connection: Connection, media_id: int, tags: Iterable[Tag]) -> int:
    """Add or strengthen tags on one media item; returns how many rows changed.

    A tag already held by a stronger source is left as it is; one held by the
    same or a weaker source is updated (source, confidence, explanation).
    """
    existing = {
        row.tag_norm: row
        for row in connection.execute(
            select(
                media_tags.c.id,
                media_tags.c.tag_norm,
                media_tags.c.source,
                media_tags.c.confidence,
                media_tags.c.kind,
            ).where(media_tags.c.media_id == media_id)
        )
    }
    changed = 0
    now = utcnow()
    seen: set[str] = set()
    for tag in tags:
        norm = tag.norm
        if norm in seen:
            continue  # the same tag twice in one call (a genre that is also a keyword)
        seen.add(norm)
        current = existing.get(norm)
        if current is None:
            connection.execute(
                media_tags.insert().values(
                    media_id=media_id,
                    tag=clean_tag(tag.tag),
                    tag_norm=norm,
                    kind=tag.kind,
                    source=tag.source,
                    confidence=tag.confidence,
                    explanation=tag.explanation,
                    created_at=now,
                    updated_at=now,
                )
            )
            changed += 1
        elif SOURCE_RANK[tag.source] >= SOURCE_RANK[current.source]:
            if (current.source, current.confidence, current.kind) == (
                tag.source,
                tag.confidence,
                tag.kind,
            ):
                continue
            connection.execute(
                update(media_tags)
                .where(media_tags.c.id == current.id)
                .values(
                    source=tag.source,
                    confidence=tag.confidence,
                    kind=tag.kind,
                    explanation=tag.explanation,
                    updated_at=now,
                )
            )
            changed += 1
    return changed


def remove_tags(
    connection: Connection,
    media_id: int,
    norms: Iterable[str],
    *,
    sources: Sequence[str] | None = None,
) -> int:
    """Delete tags by normalised name (optionally only those of some sources)."""
    condition = and_(media_tags.c.media_id == media_id, media_tags.c.tag_norm.in_(list(norms)))
    if sources is not None:
        condition = and_(condition, media_tags.c.source.in_(list(sources)))
    return int(connection.execute(delete(media_tags).where(condition)).rowcount)


def tags_by_media(connection: Connection, media_ids: Sequence[int]) -> dict[int, list[Tag]]:
    """Every tag of the given media items, strongest source first, then by name."""
    result: dict[int, list[Tag]] = {media_id: [] for media_id in media_ids}
    if not media_ids:
        return result
    rows = connection.execute(
        select(media_tags).where(media_tags.c.media_id.in_(list(media_ids)))
    ).all()
    for row in sorted(rows, key=lambda r: (-SOURCE_RANK[r.source], -r.confidence, r.tag_norm)):
        result[row.media_id].append(
            Tag(
                tag=row.tag,
                kind=row.kind,
                source=row.source,
                confidence=row.confidence,
                explanation=row.explanation,
            )
        )
    return result


def library_kinds(connection: Connection, norms: Iterable[str]) -> dict[str, str]:
    """The kind the library already holds each of these tags as (tags it lacks are left out).

    ``topic`` is the kind a tag gets when nothing says otherwise, so it counts
    only when no item holds the tag as anything else; of the other kinds the
    most common wins (ties: alphabetically first).
    """
    wanted = sorted(set(norms))
    if not wanted:
        return {}
    counts: dict[str, dict[str, int]] = {}
    for start in range(0, len(wanted), 500):
        rows = connection.execute(
            select(media_tags.c.tag_norm, media_tags.c.kind, func.count())
            .where(media_tags.c.tag_norm.in_(wanted[start : start + 500]))
            .group_by(media_tags.c.tag_norm, media_tags.c.kind)
        ).all()
        for norm, kind, count in rows:
            counts.setdefault(norm, {})[kind] = int(count)
    kinds: dict[str, str] = {}
    for norm, by_kind in counts.items():
        informative = {kind: count for kind, count in by_kind.items() if kind != "topic"}
        pool = informative or by_kind
        kinds[norm] = min(pool, key=lambda kind: (-pool[kind], kind))
    return kinds
