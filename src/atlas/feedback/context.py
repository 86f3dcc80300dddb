"""What mining and rules know about a media item: tags with sources, genre, type, folder, words.

The same :class:`MediaContext` is built for mining (the context a correction was
made in) and for applying rules (the context a rule's condition is tested
against), so a learned condition means the same thing in both places.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select, update

from atlas.db.tables import (
    media,
    media_sidecars,
    media_tag_inputs,
    media_tag_rejections,
    media_tags,
    transcripts,
    user_feedback,
)
from atlas.media.tags import SOURCE_RANK, Tag, normalise_tag
from atlas.media.words import MAX_WORDS, stored_words, text_words, words_of

__all__ = [
    "MAX_WORDS",
    "MediaContext",
    "chunked",
    "current_tags",
    "folder_of",
    "load_contexts",
    "normalise_genre",
    "take_withheld_tags",
    "text_words",
]

_CHUNK = 500
#: Rows fetched at a time from a whole-table read.
_BATCH = 5000
#: More items than this: :func:`load_contexts` reads whole tables.
_SCAN_ABOVE = 2000


@dataclass(slots=True)
class MediaContext:
    """The facts a rule condition is evaluated against."""

    media_id: int
    media_type: str = "video"
    title: str | None = None
    genre: str | None = None
    path: str | None = None
    origin: str = "file"
    words: frozenset[str] = frozenset()
    #: norm -> tag, strongest source wins.
    tags: dict[str, Tag] = field(default_factory=dict)
    #: Tags the user removed from this item; never added back.
    rejected: frozenset[str] = frozenset()
    #: The genre came from the user (an edit, a catalogue, an .nfo): rules leave it.
    genre_protected: bool = False
    #: The user moved the file: organisation rules leave it where it is.
    user_moved: bool = False

    @property
    def genre_norm(self) -> str | None:
        return normalise_genre(self.genre)

    @property
    def folder(self) -> str | None:
        return folder_of(self.path)


def normalise_genre(genre: str | None) -> str | None:
    if genre is None:
        return None
    norm = normalise_tag(genre)
    return norm or None


def folder_of(path: str | None) -> str | None:
    return os.path.dirname(path) if path else None


def chunked(values: Sequence[int], size: int = _CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def current_tags(connection: Connection, media_id: int) -> dict[str, Tag]:
    """The stored tags of one item, by norm."""
    rows = connection.execute(select(media_tags).where(media_tags.c.media_id == media_id))
    return {row.tag_norm: _tag_state(row) for row in rows}


def take_withheld_tags(connection: Connection, media_id: int) -> list[dict[str, Any]]:
    """The tags learned cut-offs held back at the item's last tagging (``{tag, norm, kind,
    confidence}``; see :mod:`atlas.tagging.cutoffs`), cleared: one review judges them."""
    where = media_tag_inputs.c.media_id == media_id
    text = connection.scalar(select(media_tag_inputs.c.withheld).where(where))
    if text is not None:
        connection.execute(update(media_tag_inputs).where(where).values(withheld=None))
    try:
        found = json.loads(text) if text else []
    except ValueError:
        return []
    if not isinstance(found, list):
        return []
    return [state for state in found if isinstance(state, dict) and "norm" in state]


_TAG_STATE_COLUMNS = (
    media_tags.c.tag,
    media_tags.c.tag_norm,
    media_tags.c.kind,
    media_tags.c.source,
    media_tags.c.confidence,
    media_tags.c.explanation,
)


def _tag_state(row: Any) -> Tag:
    return Tag(
        tag=row.tag,
        norm=row.tag_norm,
        kind=row.kind,
        source=row.source,
        confidence=row.confidence,
        explanation=row.explanation,
    )


def load_contexts(
    connection: Connection,
    media_ids: Iterable[int] | None = None,
    *,
    words: bool = True,
    protections: bool = True,
    tags_of: Collection[int] | None = None,
    word_text: dict[int, str] | None = None,
) -> dict[int, MediaContext]:
    """Contexts of the given items (all items when ``None``), read in bulk.

    ``protections=False`` leaves out what only applying rules needs (the tags the
    user rejected, whether the genre or the file location is the user's).
    ``tags_of``: read the stored tags of these items only (mining needs them only
    for genre and file patterns); ``None``: of every item.
    ``word_text``: with ``words``, each item's words go into it instead, as one
    space-separated string in text order, and the contexts keep no word sets
    (cheaper where the words are only counted, as mining does).

    Up to :data:`_SCAN_ABOVE` items are read by id; more, by one pass over each
    table that skips the rows of other items (fewer round trips than thousands
    of id lists).
    """
    ids = None if media_ids is None else sorted(set(media_ids))
    wanted = None if ids is None else set(ids)
    by_id = None if ids is None or len(ids) > _SCAN_ABOVE else ids
    contexts: dict[int, MediaContext] = {}
    columns = (
        media.c.id,
        media.c.media_type,
        media.c.title,
        media.c.genre,
        media.c.path,
        media.c.origin,
        media.c.description,
        media.c.words,
        media.c.words_key,
    )
    # id -> (description, stored words, their key)
    texts_of: dict[int, tuple[str | None, str | None, str | None]] = {}
    for where in _id_filters(media.c.id, by_id):
        # A batch of rows at a time; each row unpacked once.
        for batch in connection.execute(select(*columns).where(*where)).partitions(_BATCH):
            for media_id, kind, title, genre, path, origin, description, stored, key in batch:
                if wanted is not None and media_id not in wanted:
                    continue
                contexts[media_id] = MediaContext(
                    media_id=media_id,
                    media_type=kind,
                    title=title,
                    genre=genre,
                    path=path,
                    origin=origin,
                    genre_protected=origin == "catalog",
                )
                texts_of[media_id] = (description, stored, key)
    if not contexts:
        return contexts
    only = None if by_id is None else sorted(contexts)

    tag_lists: dict[int, list[Tag]] = {}
    tag_columns = (media_tags.c.media_id, *_TAG_STATE_COLUMNS)
    tagged: Collection[int] = contexts if tags_of is None else contexts.keys() & set(tags_of)
    tag_ids = only
    if tags_of is not None:
        tag_ids = sorted(tagged) if len(tagged) <= _SCAN_ABOVE else None
    for where in _id_filters(media_tags.c.media_id, tag_ids) if tagged else ():
        for tag_row in connection.execute(select(*tag_columns).where(*where)):
            if tag_row.media_id in tagged:
                tag_lists.setdefault(tag_row.media_id, []).append(_tag_state(tag_row))
    for media_id, states in tag_lists.items():
        ordered = sorted(states, key=lambda s: SOURCE_RANK[s.source])
        if media_id in contexts:
            contexts[media_id].tags = {state.norm: state for state in ordered}

    if protections:
        _load_protections(connection, contexts, only)
    if words:
        transcript_of: dict[int, str] = {}
        for where in _id_filters(transcripts.c.media_id, only):
            rows = connection.execute(
                select(transcripts.c.media_id, transcripts.c.text).where(*where)
            )
            transcript_of.update(
                {media_id: text for media_id, text in rows if media_id in contexts}
            )
        if word_text is not None:
            for media_id, context in contexts.items():
                description, stored, key = texts_of[media_id]
                word_text[media_id] = stored_words(
                    stored, key, context.title, description, transcript_of.get(media_id)
                )
            return contexts
        for media_id, context in contexts.items():
            description, stored, key = texts_of[media_id]
            context.words = words_of(
                stored, key, context.title, description, transcript_of.get(media_id)
            )
    return contexts


def _load_protections(
    connection: Connection, contexts: dict[int, MediaContext], only: Sequence[int] | None
) -> None:
    """What rules must leave alone: the tags the user rejected, and whether the genre
    and the file location are the user's."""
    rejected: dict[int, set[str]] = {}
    for where in _id_filters(media_tag_rejections.c.media_id, only):
        rows = connection.execute(
            select(media_tag_rejections.c.media_id, media_tag_rejections.c.tag_norm).where(*where)
        )
        for media_id, norm in rows:
            rejected.setdefault(media_id, set()).add(norm)
    for media_id, norms in rejected.items():
        if media_id in contexts:
            contexts[media_id].rejected = frozenset(norms)

    for where in _id_filters(media_sidecars.c.media_id, only):
        curated = connection.execute(
            select(media_sidecars.c.media_id).where(media_sidecars.c.kind == "nfo", *where)
        )
        for (media_id,) in curated:
            if media_id in contexts:
                contexts[media_id].genre_protected = True  # curated in another manager

    for where in _id_filters(user_feedback.c.media_id, only):
        edits = connection.execute(
            select(
                user_feedback.c.media_id,
                user_feedback.c.feedback_type,
                user_feedback.c.original_value,
            ).where(
                user_feedback.c.feedback_type.in_(("file_move", "metadata_edit")),
                user_feedback.c.source != "rule",
                *where,
            )
        )
        for media_id, kind, original in edits:
            context = contexts.get(media_id)
            if context is None:
                continue
            if kind == "file_move":
                context.user_moved = True
            elif _edited_field(original) == "genre":
                context.genre_protected = True


def _edited_field(original: str | None) -> str | None:
    if not original or not original.startswith("{"):
        return None
    try:
        data = json.loads(original)
    except json.JSONDecodeError:
        return None
    return data.get("field") if isinstance(data, dict) else None


def _id_filters(column: Any, ids: Sequence[int] | None) -> Iterator[tuple[Any, ...]]:
    if ids is None:
        yield ()
        return
    for chunk in chunked(ids):
        yield (column.in_(chunk),)
