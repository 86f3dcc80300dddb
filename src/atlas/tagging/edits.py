"""An item's tags as the user sees and edits them (``media-tags list|add|remove``).

A TARGET is a media id or the path of an ingested file. Adding and removing are
the user's edits: they go through :mod:`atlas.feedback` (``add_user_tags``,
``remove_user_tags``), so they are recorded as feedback, judge pending rule
applications, and a removed tag is remembered so that neither the tagger nor
a rule adds it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from atlas.config import FeedbackSettings
from atlas.db import check_id, database_errors
from atlas.db.tables import media
from atlas.errors import InvalidInput, NotFound
from atlas.feedback import EditReport, add_user_tags, remove_user_tags
from atlas.media.probe import MEDIA_EXTENSIONS
from atlas.media.tags import Tag, clean_tag, tags_by_media
from atlas.paths import user_path

__all__ = [
    "MediaTags",
    "TagEdit",
    "add_media_tags",
    "list_media_tags",
    "remove_media_tags",
    "resolve_target",
]

_KINDS = ("genre", "topic", "keyword")


@dataclass(frozen=True)
class MediaTags:
    """One item and its tags, strongest source first."""

    media_id: int
    title: str | None
    path: str | None
    tags: list[Tag]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.media_id,
            "title": self.title,
            "path": self.path,
            "tags": [asdict(tag) for tag in self.tags],
        }


@dataclass(frozen=True)
class TagEdit:
    """A user's edit of an item's tags, and the tags afterwards."""

    media: MediaTags
    report: EditReport

    def to_dict(self) -> dict[str, Any]:
        return {**self.media.to_dict(), "edit": self.report.to_dict()}


def resolve_target(engine: Engine, target: str) -> int:
    """The media id a TARGET names: a media id, or the path of an ingested file.

    Raises ``InvalidInput`` (empty, a folder, a file that is not media) or
    ``NotFound`` (no such id, a path not in the library).
    """
    text = target.strip()
    if not text:
        raise InvalidInput("the target is empty; give a media id or the path of a media file")
    # A number names a media id, unless a file of that name is right here.
    if text.isascii() and text.isdigit() and not (len(text) <= 255 and Path(text).exists()):
        media_id = check_id(int(text))
        with database_errors(engine), engine.connect() as connection:
            found = connection.scalar(select(media.c.id).where(media.c.id == media_id))
        if found is None:
            raise NotFound(f"no media with id {text}")
        return int(found)
    path = user_path(text, what="target")
    with database_errors(engine), engine.connect() as connection:
        found = connection.scalar(
            select(media.c.id).where(
                media.c.path == str(user_path(path, what="target", resolve=True))
            )
        )
    if found is not None:
        return int(found)
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder; give a media id or the path of a media file")
    if not path.exists():
        raise NotFound(f"{path}: no such file, and no media id")
    if path.suffix.lower().lstrip(".") not in MEDIA_EXTENSIONS:
        raise InvalidInput(f"{path} is not a media file")
    raise NotFound(f"{path} is not in the library; ingest it first: atlas media-ingest {path}")


def _media_tags(engine: Engine, media_id: int) -> MediaTags:
    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(
            select(media.c.id, media.c.title, media.c.path).where(media.c.id == media_id)
        ).first()
        if row is None:
            raise NotFound(f"no media with id {media_id}")
        tags = tags_by_media(connection, [media_id])[media_id]
    return MediaTags(row.id, row.title, row.path, tags)


def list_media_tags(engine: Engine, target: str) -> MediaTags:
    """The tags of the item TARGET names; raises as :func:`resolve_target`."""
    return _media_tags(engine, resolve_target(engine, target))


def _check_tags(tags: Sequence[str]) -> list[str]:
    if not tags:
        raise InvalidInput("give at least one tag")
    return [clean_tag(tag) for tag in tags]


def add_media_tags(
    engine: Engine,
    settings: FeedbackSettings,
    target: str,
    tags: Sequence[str],
    *,
    kind: str | None = None,
    vocabulary_kinds: Mapping[str, str] | None = None,
) -> TagEdit:
    """Add tags as the user's, recorded as feedback; an automatic tag added again is confirmed.

    With no ``kind``, a new tag's kind comes from ``vocabulary_kinds`` (the tag
    vocabulary's, ``Vocabulary.kinds()``) and the library (``add_user_tags``).
    Checks everything before writing: an empty or over-long tag, an unknown
    kind or target changes nothing.
    """
    cleaned = _check_tags(tags)
    if kind is not None and kind not in _KINDS:
        raise InvalidInput(f"unknown tag kind {kind!r}; use genre, topic or keyword")
    media_id = resolve_target(engine, target)
    report = add_user_tags(
        engine, settings, media_id, cleaned, kind=kind, vocabulary_kinds=vocabulary_kinds
    )
    return TagEdit(_media_tags(engine, media_id), report)


def remove_media_tags(
    engine: Engine, settings: FeedbackSettings, target: str, tags: Sequence[str]
) -> TagEdit:
    """Remove tags, recorded as feedback and remembered as rejected (never added back).

    Raises ``NotFound`` when the item lacks one of them; nothing is removed then.
    """
    cleaned = _check_tags(tags)
    media_id = resolve_target(engine, target)
    report = remove_user_tags(engine, settings, media_id, cleaned)
    return TagEdit(_media_tags(engine, media_id), report)
