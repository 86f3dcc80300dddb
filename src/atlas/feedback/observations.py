"""Reading the feedback once, in bulk, into one observation per item and kind.

Tags: what Atlas showed before the user's first review (with the effect of learned
rules taken back out, so that rules do not blur the evidence they came from) and
what the user left at their latest edit. Genres: the value before the first edit
and after the last. Files: the folder the user last moved the item to. Each
observation weighs ``confidence_score * 0.5 ** (age_days / feedback.half_life_days)``
of its latest edit (age in whole hours). Undo rows and rules' own rows are not read.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, or_, select

from atlas.config import FeedbackSettings
from atlas.db.tables import user_feedback
from atlas.feedback.context import MediaContext, normalise_genre
from atlas.feedback.pattern_model import Pattern
from atlas.media.tags import normalise_tag

if TYPE_CHECKING:
    from atlas.feedback.evidence import Evidence
    from atlas.feedback.sparse import Additions

__all__ = ["Norms", "Observations", "TagObs"]

#: Feedback rows fetched at a time.
_BATCH = 5000


def _known(state: dict[str, Any]) -> str:
    """The norm of a stored tag state; ``KeyError`` when it lacks its norm or its tag."""
    if "tag" not in state:
        raise KeyError("tag")
    norm: str = state["norm"]
    return norm


class TagObs:
    __slots__ = ("final", "pre", "w")

    def __init__(
        self,
        pre: dict[str, str] | None = None,
        final: set[str] | None = None,
        w: float = 0.0,
    ) -> None:
        self.pre = {} if pre is None else pre  # norm -> source
        self.final = set() if final is None else final
        self.w = w


class Norms(dict[str, str]):
    """Tag spelling -> norm, each spelling normalised once."""

    def __missing__(self, tag: str) -> str:
        norm = self[tag] = normalise_tag(tag)
        return norm


class Observations:
    """Every reviewed item's observations, and the spellings and kinds of its tags."""

    def __init__(self, settings: FeedbackSettings, now: datetime) -> None:
        self.half_life_s = settings.half_life_days * 86400.0
        self.now = now
        self.tags: dict[int, TagObs] = {}
        self.genres: dict[
            int, list[Any]
        ] = {}  # id -> [pre norm, pre display, final norm, final display, w]
        self.moves: dict[int, tuple[str, float]] = {}  # id -> (final folder, w)
        self.user_display: dict[str, str] = {}
        #: Spelling -> norm (the norms stored with the tags, else normalised once).
        self.norm_of = Norms()
        self.paired: Counter[tuple[str, str]] = Counter()
        self.atlas_display: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.contexts: dict[int, MediaContext] = {}
        #: Each item's words, space-separated (the contexts keep no word sets).
        self.word_text: dict[int, str] = {}
        self.additions: Additions | None = None
        #: Addition patterns (by key) -> (tag, feature): their examples are found once kept.
        self.addition_keys: dict[str, tuple[str, str]] = {}
        # Per tag, the weight of reviewed items Atlas showed it on, and that the user added it to.
        self.pre_w: dict[str, float] = {}
        self.added_w: dict[str, float] = {}
        self.total_w = 0.0
        #: The reviewed items as tag mining measured them (after :func:`tag_patterns`).
        self.evidence: Evidence | None = None

    # -- reading ---------------------------------------------------------------

    def read(self, connection: Connection) -> int:
        query = (
            select(
                user_feedback.c.media_id,
                user_feedback.c.feedback_type,
                user_feedback.c.original_value,
                user_feedback.c.corrected_value,
                user_feedback.c.confidence_score,
                user_feedback.c.timestamp,
            )
            .where(
                or_(
                    user_feedback.c.source.is_(None),
                    user_feedback.c.source.notin_(("undo", "rule")),
                )
            )
            .order_by(user_feedback.c.timestamp, user_feedback.c.id)
        )
        count = 0
        now_s = self.now.timestamp()
        # Per item only its first and its latest tag edit matter: parse just those.
        half_life_s = self.half_life_s
        tag_rows: dict[int, list[Any]] = {}
        # Fetched a batch at a time (one driver call per batch, not per row), in order.
        for batch in connection.execute(query).partitions(_BATCH):
            count += len(batch)
            for media_id, kind, original, corrected, confidence, stamp in batch:
                # Whole hours: corrections of the same session weigh the same.
                age = max(0.0, round((now_s - stamp.timestamp()) / 3600) * 3600.0)
                weight = (1.0 if confidence is None else confidence) * 0.5 ** (age / half_life_s)
                if kind == "tag_correction":
                    known = tag_rows.get(media_id)
                    if known is None:
                        tag_rows[media_id] = [(original, corrected, weight), None]
                    else:
                        known[1] = (original, corrected, weight)
                elif kind == "metadata_edit":
                    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                        self._genre_row(media_id, original, corrected, weight)
                elif kind == "file_move" and corrected:
                    self.moves[media_id] = (os.path.dirname(corrected), weight)
        for media_id, (first, last) in tag_rows.items():
            # A row in a layout this version does not know is not evidence.
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                self._tag_item(media_id, first, last)
        return count

    def _tag_item(
        self, media_id: int, first: tuple[str, str, float], last: tuple[str, str, float] | None
    ) -> None:
        """What Atlas showed at the first review (rules taken out), what the user left last."""
        atlas_display, kinds, norm_of = self.atlas_display, self.kinds, self.norm_of
        before = orjson.loads(first[0])
        # norm -> source. A state without a norm or a tag is a layout this version does
        # not know: the item is skipped (``_known`` raises KeyError).
        pre: dict[str, str] = {}
        for state in before["tags"]:
            norm, source, tag = state["norm"], state["source"], state["tag"]
            if norm not in atlas_display:  # the first spelling and kind seen
                atlas_display[norm], kinds[norm] = tag, state.get("kind", "topic")
            if source != "rule":  # a rule put it there: not what Atlas predicted
                pre[norm] = source
            norm_of[tag] = norm
        for state in before.get("rules", {}).get("removed", ()):
            pre.setdefault(_known(state), "auto")
        if last is not None:
            before = orjson.loads(last[0])
            for state in before["tags"]:  # predictions made after the first review
                if state["source"] == "auto" and state["norm"] not in pre:
                    pre[_known(state)] = "auto"
            for state in before.get("rules", {}).get("removed", ()):
                pre.setdefault(_known(state), "auto")
        _original, corrected, weight = last or first
        after = orjson.loads(corrected)
        final = {state["norm"] for state in before["tags"]}
        final.difference_update(map(norm_of.__getitem__, after["removed"]))
        added = after["added"]
        if added:
            norms = list(map(norm_of.__getitem__, added))
            final.update(norms)
            self.user_display.update(zip(norms, added, strict=True))
        for old, new in after.get("replaced", ()):
            self.paired[(norm_of[old], norm_of[new])] += 1
        self.tags[media_id] = TagObs(pre, final, weight)

    def _genre_row(self, media_id: int, original: str, corrected: str, weight: float) -> None:
        if not original or not original.startswith("{"):
            return
        before = orjson.loads(original)
        if before.get("field") != "genre":
            return
        after = orjson.loads(corrected)
        value = after.get("value")
        known = self.genres.get(media_id)
        if known is None:
            old = before.get("value")
            known = self.genres[media_id] = [normalise_genre(old), old, None, None, weight]
        known[2], known[3], known[4] = normalise_genre(value), value, weight

    def find_examples(self, patterns: list[Pattern]) -> None:
        """Fill in the examples of the addition patterns (measured without them)."""
        for pattern in patterns:
            where = self.addition_keys.get(pattern.key)
            if where is not None and self.additions is not None:
                pattern.examples = sorted(self.additions.examples(*where))

    def items(self) -> list[int]:
        return sorted(set(self.tags) | set(self.genres) | set(self.moves))

    def display(self, norm: str) -> str:
        """How the user spells a tag (else how Atlas showed it)."""
        return self.user_display.get(norm) or self.atlas_display.get(norm) or norm
