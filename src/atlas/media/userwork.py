"""What the user owns on a media item, so that imports and automatic work leave it alone.

Read in bulk from the records of the user's own actions, which stay the one source
of truth (nothing is copied into a second "edited" flag that could drift from them):

- **fields the user edited**: the field named by each ``metadata_edit`` / ``rating``
  row of ``user_feedback`` (``atlas media edit``, ``track-tag-edits --genre/--rating``,
  an undone genre rule), and ``path`` once the item's file was moved (a ``file_move``
  row: ``atlas media move``, a move that ingest found, an undone organisation rule).
  Rows written by a rule do not count, as in :mod:`atlas.feedback.context`;
- **tags the user removed**: ``media_tag_rejections``;
- **tags the user set or confirmed**: ``media_tags`` rows with source ``user``.

Catalogue re-import and ingest of a changed file (or .nfo) consult it: a field the
user edited keeps the user's value, a removed tag is not added back, a user's tag is
left exactly as it is; and they count what they kept (:class:`Kept`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, or_, select

from atlas.db.tables import media_tag_rejections, media_tags, user_feedback
from atlas.media.tags import Tag

__all__ = [
    "Kept",
    "UserWork",
    "edited_from",
    "keep_user_fields",
    "keep_user_tags",
    "load_user_work",
]

#: ``user_feedback`` rows that say the user set a field of the item.
_FIELD_EDITS = ("metadata_edit", "rating", "file_move")
_CHUNK = 500


@dataclass(frozen=True)
class UserWork:
    """The user's own work on one item."""

    #: Media columns the user set: title, genre, description, artist, year, rating, path.
    fields: frozenset[str] = frozenset()
    #: Normalised tags the user removed from the item (never added back).
    removed_tags: frozenset[str] = frozenset()
    #: Normalised tags the user set or confirmed (left exactly as they are).
    user_tags: frozenset[str] = frozenset()


NO_WORK = UserWork()


@dataclass
class Kept:
    """How many of the user's edits an import left in place (where it would have changed them)."""

    fields: int = 0
    removed_tags: int = 0

    def add(self, other: Kept) -> None:
        self.fields += other.fields
        self.removed_tags += other.removed_tags

    def __bool__(self) -> bool:
        return bool(self.fields or self.removed_tags)

    def to_dict(self) -> dict[str, int]:
        return {"fields": self.fields, "removed_tags": self.removed_tags}

    def describe(self) -> str:
        """``kept 3 fields and 2 removed tags you edited``"""
        parts = []
        if self.fields:
            parts.append(f"{self.fields} field{'s' if self.fields != 1 else ''}")
        if self.removed_tags:
            parts.append(f"{self.removed_tags} removed tag{'s' if self.removed_tags != 1 else ''}")
        return f"kept {' and '.join(parts)} you edited" if parts else ""


def load_user_work(connection: Connection, media_ids: Iterable[int]) -> dict[int, UserWork]:
    """The user's work on each of ``media_ids`` (items without any are left out).

    Three indexed queries per 500 items, whatever the size of the tables.
    """
    ids = sorted(set(media_ids))
    fields: dict[int, set[str]] = {}
    removed: dict[int, set[str]] = {}
    user_tags: dict[int, set[str]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        edits = connection.execute(
            select(
                user_feedback.c.media_id,
                user_feedback.c.feedback_type,
                user_feedback.c.original_value,
            ).where(
                user_feedback.c.media_id.in_(chunk),
                user_feedback.c.feedback_type.in_(_FIELD_EDITS),
                or_(user_feedback.c.source.is_(None), user_feedback.c.source != "rule"),
            )
        )
        for media_id, kind, original in edits:
            name = "path" if kind == "file_move" else _edited_field(original)
            if name is not None:
                fields.setdefault(media_id, set()).add(name)
        rejections = connection.execute(
            select(media_tag_rejections.c.media_id, media_tag_rejections.c.tag_norm).where(
                media_tag_rejections.c.media_id.in_(chunk)
            )
        )
        for media_id, norm in rejections:
            removed.setdefault(media_id, set()).add(norm)
        owned = connection.execute(
            select(media_tags.c.media_id, media_tags.c.tag_norm).where(
                media_tags.c.media_id.in_(chunk), media_tags.c.source == "user"
            )
        )
        for media_id, norm in owned:
            user_tags.setdefault(media_id, set()).add(norm)
    return {
        media_id: UserWork(
            fields=frozenset(fields.get(media_id, ())),
            removed_tags=frozenset(removed.get(media_id, ())),
            user_tags=frozenset(user_tags.get(media_id, ())),
        )
        for media_id in set(fields) | set(removed) | set(user_tags)
    }


def edited_from(connection: Connection, names: Sequence[str]) -> dict[str, dict[Any, set[int]]]:
    """For each field of ``names``: every value the user changed it from -> those items.

    Lets an import recognise an item by what it was called before the user renamed
    it. Reads the ``metadata_edit`` rows of these fields (one pass over the table).
    """
    result: dict[str, dict[Any, set[int]]] = {name: {} for name in names}
    prefixes = [_edit_prefix(name) for name in names]
    rows = connection.execute(
        select(user_feedback.c.media_id, user_feedback.c.original_value).where(
            user_feedback.c.feedback_type == "metadata_edit",
            or_(user_feedback.c.source.is_(None), user_feedback.c.source != "rule"),
            or_(*(user_feedback.c.original_value.startswith(p, autoescape=True) for p in prefixes)),
        )
    )
    for media_id, original in rows:
        data = _edit_of(original)
        if data is not None and data.get("field") in result:
            value = data.get("value")
            if isinstance(value, (str, int, float)) or value is None:
                result[data["field"]].setdefault(value, set()).add(media_id)
    return result


def _edit_prefix(name: str) -> str:
    # How insert_feedback writes {"field": NAME, ...}: compact JSON, the field first.
    return json.dumps({"field": name}, separators=(",", ":"))[:-1]


def _edit_of(original: str | None) -> dict[str, Any] | None:
    # Layout: {"field": NAME, "value": OLD} (see atlas.feedback.records).
    if not original or not original.startswith("{"):
        return None
    try:
        data = json.loads(original)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _edited_field(original: str | None) -> str | None:
    data = _edit_of(original)
    name = data.get("field") if data is not None else None
    return name if isinstance(name, str) else None


def keep_user_fields(
    work: UserWork, current: Mapping[str, Any], values: MutableMapping[str, Any]
) -> int:
    """Take the fields the user edited out of ``values`` (an update of the item).

    Returns how many of them the update would have changed: the edits it kept.
    """
    kept = 0
    for name in sorted(work.fields & set(values)):
        if values.pop(name) != current.get(name):
            kept += 1
    return kept


def keep_user_tags(work: UserWork, tags: Sequence[Tag]) -> tuple[list[Tag], int]:
    """Imported tags less those the user removed and those the user already holds.

    Returns the tags to store and how many removed tags the import carried (kept removed).
    """
    result = []
    kept: set[str] = set()
    for tag in tags:
        norm = tag.norm
        if norm in work.removed_tags:
            kept.add(norm)
        elif norm not in work.user_tags:
            result.append(tag)
    return result, len(kept)
