"""Recording the user's edits as feedback, in the same transaction as the edit itself.

Each edit changes the item and writes one ``user_feedback`` row per changed value
(layouts in :mod:`atlas.feedback.records`), judges the rule applications on that
item (:func:`atlas.feedback.judging.judge_edit`) and, for removed tags, remembers the
rejection so that neither the tagger nor a rule adds the tag back. Input is checked
before anything is written; on bad input nothing is.

Tags the user sets are stored with source ``user``. Giving the full tag set
(``track-tag-edits --tags``) also confirms the automatic tags it keeps, and is
recorded even when nothing changed: a confirmation is evidence too (mining counts
it, and it judges pending rule applications as kept).

A tag new to the item gets its kind from, in turn: the kind the user chose
(``media-tags add --kind``), the tag vocabulary (``vocabulary_kinds``: a genre of
the vocabulary stays a genre whoever typed it), the kind the library already
holds it as (``atlas.media.tags.library_kinds``), else ``topic``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from atlas.config import FeedbackSettings
from atlas.db import check_id, database_errors, utcnow
from atlas.db.tables import media
from atlas.errors import InvalidInput, NotFound
from atlas.feedback.context import current_tags, take_withheld_tags
from atlas.feedback.judging import Judgement, judge_edit, live_rule_effects
from atlas.feedback.records import clear_rejections, insert_feedback, reject_tags, tag_values
from atlas.media.tags import (
    MAX_TAGS,
    Tag,
    check_text,
    library_kinds,
    normalise_tag,
    parse_tag_list,
    remove_tags,
    upsert_tags,
)
from atlas.media.words import WORD_FIELDS, refresh_words

__all__ = [
    "EDITABLE_FIELDS",
    "MAX_TAGS",
    "MAX_TAG_STRING",
    "EditReport",
    "ValueChange",
    "add_user_tags",
    "check_confidence",
    "check_rating",
    "edit_metadata",
    "parse_tag_set",
    "remove_user_tags",
    "track_tag_edits",
]

#: The longest ``--tags`` string accepted (the most tags at once: ``MAX_TAGS``, shared
#: with catalogue rows).
MAX_TAG_STRING = 2000
EDITABLE_FIELDS = ("title", "genre", "description", "artist", "year")
_TEXT_LIMITS = {"title": 1000, "genre": 100, "description": 100_000, "artist": 1000}


@dataclass(frozen=True)
class ValueChange:
    """One changed (or confirmed) value and the feedback row that records it."""

    name: str
    before: Any
    after: Any
    feedback_id: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    replaced: list[list[str]] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        if self.name == "tags":
            return bool(self.added or self.removed)
        return bool(self.before != self.after)


@dataclass
class EditReport:
    media_id: int
    changes: list[ValueChange] = field(default_factory=list)
    judged: list[Judgement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "media_id": self.media_id,
            "changes": [change.__dict__ for change in self.changes],
            "judged": [judgement.to_dict() for judgement in self.judged],
        }


# --- checking input -------------------------------------------------------------------


def check_confidence(value: float) -> float:
    if not 0 <= value <= 1:
        raise InvalidInput(f"`confidence` must be between 0 and 1, got {value:g}")
    return float(value)


def check_rating(value: float) -> float:
    if not 0 <= value <= 5 or value * 2 != int(value * 2):
        raise InvalidInput(f"`rating` must be between 0 and 5 in steps of 0.5, got {value:g}")
    return float(value)


def parse_tag_set(value: str | Sequence[str]) -> list[str]:
    """The tags of a ``--tags`` value: at least one, none empty or too long."""
    if isinstance(value, str) and len(value) > MAX_TAG_STRING:
        raise InvalidInput(
            f"`tags` is {len(value):,} characters long; the limit is {MAX_TAG_STRING:,}"
        )
    tags = parse_tag_list(value)
    if not tags:
        raise InvalidInput("`tags` needs at least one tag")
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"`tags` names {len(tags)} tags; the limit is {MAX_TAGS}")
    return tags


def _check_text(name: str, value: str) -> str:
    return check_text(
        value, what=f"`{name}`", limit=_TEXT_LIMITS[name], multiline=name == "description"
    )


# --- the services -----------------------------------------------------------------------


def track_tag_edits(
    engine: Engine,
    settings: FeedbackSettings,
    media_id: int,
    *,
    tags: str | Sequence[str] | None = None,
    genre: str | None = None,
    rating: float | None = None,
    confidence: float = 1.0,
    vocabulary_kinds: Mapping[str, str] | None = None,
) -> EditReport:
    """Apply the user's corrections to one item and record them, in one transaction.

    ``tags``: the corrected full tag set; ``genre``; ``rating`` (0..5 in halves);
    ``confidence``: how sure the user is (0..1), stored with each feedback row;
    ``vocabulary_kinds``: the tag vocabulary's kinds by normalised name.
    Raises ``InvalidInput`` / ``NotFound`` before writing anything.
    """
    if tags is None and genre is None and rating is None:
        raise InvalidInput("nothing to record: give `tags`, `genre` and/or `rating`")
    confidence = check_confidence(confidence)
    wanted = parse_tag_set(tags) if tags is not None else None
    genre = _check_text("genre", genre) if genre is not None else None
    rating = check_rating(rating) if rating is not None else None

    now = utcnow()
    report = EditReport(media_id)
    with database_errors(engine), engine.begin() as connection:
        row = _media_row(connection, media_id)
        if wanted is not None:
            _edit_tags(
                connection,
                settings,
                report,
                set_to=wanted,
                vocabulary_kinds=vocabulary_kinds,
                confidence=confidence,
                now=now,
            )
        if genre is not None:
            _edit_field(
                connection,
                settings,
                report,
                row,
                "genre",
                genre,
                confidence,
                now,
                confirm_unchanged=True,
            )
        if rating is not None:
            _edit_field(connection, settings, report, row, "rating", rating, confidence, now)
    return report


def add_user_tags(
    engine: Engine,
    settings: FeedbackSettings,
    media_id: int,
    tags: str | Sequence[str],
    *,
    kind: str | None = None,
    confidence: float = 1.0,
    vocabulary_kinds: Mapping[str, str] | None = None,
) -> EditReport:
    """Add tags to an item as the user's (``media-tags add``), recorded as feedback.

    An automatic tag the user adds again becomes theirs (a confirmation). Adding
    tags the user already set changes and records nothing. With no ``kind``, each
    new tag's kind comes from ``vocabulary_kinds`` and the library.
    """
    confidence = check_confidence(confidence)
    wanted = parse_tag_set(tags)
    if kind is not None and kind not in ("genre", "topic", "keyword"):
        raise InvalidInput(f"unknown tag kind {kind!r}; use genre, topic or keyword")
    report = EditReport(media_id)
    with database_errors(engine), engine.begin() as connection:
        _media_row(connection, media_id)
        _edit_tags(
            connection,
            settings,
            report,
            add=wanted,
            kind=kind,
            vocabulary_kinds=vocabulary_kinds,
            confidence=confidence,
            now=utcnow(),
        )
    return report


def remove_user_tags(
    engine: Engine,
    settings: FeedbackSettings,
    media_id: int,
    tags: str | Sequence[str],
    *,
    confidence: float = 1.0,
) -> EditReport:
    """Remove tags from an item (``media-tags remove``), recorded as feedback and remembered
    as rejected. Raises ``NotFound`` if the item lacks one of them (nothing is removed)."""
    confidence = check_confidence(confidence)
    unwanted = parse_tag_set(tags)
    report = EditReport(media_id)
    with database_errors(engine), engine.begin() as connection:
        _media_row(connection, media_id)
        _edit_tags(
            connection, settings, report, remove=unwanted, confidence=confidence, now=utcnow()
        )
    return report


def edit_metadata(
    engine: Engine,
    settings: FeedbackSettings,
    media_id: int,
    *,
    confidence: float = 1.0,
    **values: Any,
) -> EditReport:
    """Change descriptive fields (title, genre, description, artist, year) of one item.

    One ``metadata_edit`` feedback row per field that changed; a field given with
    its current value records nothing. One transaction.
    """
    confidence = check_confidence(confidence)
    given = {name: value for name, value in values.items() if value is not None}
    unknown = sorted(set(given) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"cannot edit {', '.join(unknown)}; editable: {', '.join(EDITABLE_FIELDS)}"
        )
    if not given:
        fields = ", ".join(f"`{name}`" for name in EDITABLE_FIELDS)
        raise InvalidInput(f"nothing to change: give at least one of {fields}")
    for name, value in list(given.items()):
        if name == "year":
            if not isinstance(value, int) or not 1800 <= value <= 2200:
                raise InvalidInput(f"`year` must be a year between 1800 and 2200, got {value}")
        else:
            given[name] = _check_text(name, str(value))
    now = utcnow()
    report = EditReport(media_id)
    with database_errors(engine), engine.begin() as connection:
        row = _media_row(connection, media_id)
        for name in EDITABLE_FIELDS:
            if name in given:
                _edit_field(connection, settings, report, row, name, given[name], confidence, now)
    return report


# --- inside the transaction ---------------------------------------------------------------


def _new_tag_kinds(
    connection: Connection,
    norms: Sequence[str],
    chosen: str | None,
    vocabulary_kinds: Mapping[str, str] | None,
) -> dict[str, str]:
    """The kind each tag new to an item is stored as (see the module's docstring)."""
    if chosen is not None:
        return {norm: chosen for norm in norms}
    vocabulary = vocabulary_kinds or {}
    known = library_kinds(connection, [norm for norm in norms if norm not in vocabulary])
    return {norm: vocabulary.get(norm) or known.get(norm) or "topic" for norm in norms}


def _media_row(connection: Connection, media_id: int) -> Any:
    check_id(media_id)
    row = connection.execute(select(media).where(media.c.id == media_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no media with id {media_id}")
    return row


def _edit_tags(
    connection: Connection,
    settings: FeedbackSettings,
    report: EditReport,
    *,
    set_to: Sequence[str] | None = None,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    kind: str | None = None,
    vocabulary_kinds: Mapping[str, str] | None = None,
    confidence: float,
    now: datetime,
) -> None:
    media_id = report.media_id
    current = current_tags(connection, media_id)
    removed: list[Tag] = []
    added: list[str] = []
    confirmed: list[str] = []
    keep: dict[str, str] = {}  # norm -> display, the user's tags after the edit
    if set_to is not None:
        scope = "set"
        wanted = {normalise_tag(tag): tag for tag in set_to}
        removed = [state for norm, state in current.items() if norm not in wanted]
        for norm, tag in wanted.items():
            if norm not in current:
                added.append(tag)
            elif current[norm].source != "user":
                confirmed.append(current[norm].tag)
            keep[norm] = current[norm].tag if norm in current else tag
    elif add:
        scope = "add"
        for tag in add:
            norm = normalise_tag(tag)
            if norm not in current:
                added.append(tag)
                keep[norm] = tag
            elif current[norm].source != "user":
                confirmed.append(current[norm].tag)
                keep[norm] = current[norm].tag
        if not added and not confirmed:
            return  # the user's tags already: nothing changes, nothing to record
    else:
        scope = "remove"
        missing = [tag for tag in remove if normalise_tag(tag) not in current]
        if missing:
            raise NotFound(f"media {media_id} has no tag {missing[0]!r}")
        removed = [current[normalise_tag(tag)] for tag in remove]

    removed_norms = {state.norm for state in removed}
    after = [state.tag for norm, state in current.items() if norm not in removed_norms]
    after += [tag for tag in added]
    if set_to is not None:
        after = list(keep.values())
    remove_tags(connection, media_id, sorted(removed_norms))
    kinds = _new_tag_kinds(
        connection, [norm for norm in keep if norm not in current], kind, vocabulary_kinds
    )
    upsert_tags(
        connection,
        media_id,
        [
            Tag(
                display,
                kind=current[norm].kind if norm in current else kinds[norm],
                source="user",
                confidence=confidence,
                explanation="set by the user",
            )
            for norm, display in keep.items()
        ],
    )
    taken = [s for s in live_rule_effects(connection, media_id) if s.norm not in current]
    original, corrected = tag_values(
        current,
        after,
        added=added,
        removed=[state.tag for state in removed],
        confirmed=confirmed,
        scope=scope,
        rule_removed=taken,
        # What Atlas held back is judged by the next full review (and only by it).
        withheld=[w for w in take_withheld_tags(connection, media_id) if w["norm"] not in current]
        if scope == "set"
        else (),
    )
    feedback_id = insert_feedback(
        connection,
        media_id,
        "tag_correction",
        original,
        corrected,
        confidence=confidence,
        source="user",
        now=now,
    )
    reject_tags(connection, media_id, removed, feedback_id=feedback_id, now=now)
    clear_rejections(connection, media_id, (normalise_tag(tag) for tag in added))
    final = {normalise_tag(tag) for tag in after}
    report.judged += judge_edit(
        connection, settings, media_id, feedback_id=feedback_id, now=now, tags_final=final
    )
    report.changes.append(
        ValueChange(
            name="tags",
            before=[state.tag for state in current.values()],
            after=after,
            feedback_id=feedback_id,
            added=added,
            removed=[state.tag for state in removed],
            replaced=corrected["replaced"],
            confirmed=confirmed,
        )
    )


def _edit_field(
    connection: Connection,
    settings: FeedbackSettings,
    report: EditReport,
    row: Any,
    name: str,
    value: Any,
    confidence: float,
    now: datetime,
    *,
    confirm_unchanged: bool = False,
) -> None:
    old = getattr(row, name)
    if old == value and not confirm_unchanged:
        return
    if old != value:
        connection.execute(
            update(media)
            .where(media.c.id == report.media_id)
            .values({name: value, "updated_at": now})
        )
        if name in WORD_FIELDS:
            refresh_words(connection, [report.media_id])
    feedback_id = insert_feedback(
        connection,
        report.media_id,
        "rating" if name == "rating" else "metadata_edit",
        {"field": name, "value": old},
        {"field": name, "value": value},
        confidence=confidence,
        source="user",
        now=now,
    )
    extra: dict[str, Any] = {"genre_final": value} if name == "genre" else {}
    report.judged += judge_edit(
        connection, settings, report.media_id, feedback_id=feedback_id, now=now, **extra
    )
    report.changes.append(ValueChange(name=name, before=old, after=value, feedback_id=feedback_id))
