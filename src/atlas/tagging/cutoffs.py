"""Learned cut-offs: how confident an automatic tag must be to be worth showing.

Every full review of an item's tags (``track-tag-edits --tags``: the user states
the whole set) tells which automatic tags the user kept and which they removed.
An automatic tag costs the user one edit when it is wrong and saves one when it
is right, so it is worth showing when it is more likely kept than not. Per tag
kind (genre, topic, keyword), and per tag once that tag alone has enough reviews,
over the latest ``tagging.cutoff_window`` reviewed automatic tags, the learned
cut-off is the confidence ``c`` that would have saved the most edits::

    c = argmax over c of  (kept - removed) among reviewed tags with confidence >= c

Tags below ``tagging.threshold`` are never shown, so the cut-off only ever raises
it. When no cut-off saves anything (the user removes nearly every tag of the
kind, e.g. keyphrases a user does not tag by), the kind is not proposed at all
(cut-off above 1); when no keyword can be shown, the tagger does not run its
keyphrase source. A kind or a tag is judged once ``tagging.cutoff_min_reviews``
of its tags were reviewed; a tag's own cut-off takes precedence over its kind's.
``tagging.learn_cutoffs = false`` switches this off.

Tags that an enabled learned rule takes off every item (a removal or a mapping
of the tag alone: 'Sci-Fi', when the user says 'Science Fiction') are the rule's
business, not evidence about their kind: they are left out of its reviews, so a
few renamed vocabulary entries do not hold back every genre.

When the best cut-off is the lowest confidence reviewed (showing everything
paid), the threshold stands, so a cut-off raised while the tagger knew little
comes down again once the newer reviews say so. That holds for a kind or tag
that is not proposed at all, too: the tagger records the candidates over the
threshold that a cut-off held back (``media_tag_inputs.withheld``), and a full
review judges them as if they had been shown: one the user adds counts as
kept, one they do not as removed. (Keyphrases are not computed while no keyword
can be shown, so a hidden keyword kind stays hidden.)
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from atlas.caches import CACHES
from atlas.config import TaggingSettings
from atlas.db import database_errors
from atlas.db.tables import user_feedback
from atlas.feedback.rule_store import load_rules
from atlas.media.tags import normalise_tag

__all__ = [
    "NEVER",
    "Cutoff",
    "Cutoffs",
    "learn_cutoff",
    "learned_cutoffs",
    "reviewed_tags",
]

#: Feedback rows read at most (the newest).
_MAX_ROWS = 5000
#: A cut-off above every confidence: not proposed.
NEVER = 1.01


@dataclass(frozen=True)
class Cutoff:
    """The learned cut-off of one tag kind (or one tag), with its evidence."""

    kind: str
    cutoff: float
    reviewed: int
    kept: int
    #: Edits the cut-off would have saved on the reviewed tags.
    saved: int
    #: The tag, for a tag's own cut-off.
    tag: str | None = None

    @property
    def never(self) -> bool:
        return self.cutoff > 1.0

    def note(self) -> str:
        what = f"'{self.tag}'" if self.tag else f"{self.kind} tags"
        share = self.kept / self.reviewed if self.reviewed else 0.0
        evidence = f"you kept {self.kept} of the last {self.reviewed} ({share:.0%})"
        if self.never:
            return f"{what} not proposed: {evidence}"
        return (
            f"{what} need confidence {self.cutoff:.2f}: {evidence}; "
            f"this cut-off would have saved {self.saved} edits"
        )


@dataclass
class Cutoffs:
    """The learned cut-offs: per kind, and per tag where the tag has enough reviews."""

    kinds: dict[str, Cutoff] = field(default_factory=dict)
    tags: dict[str, Cutoff] = field(default_factory=dict)

    def level(self, norm: str, kind: str) -> float:
        """The confidence a tag must reach (0.0: no cut-off learned for it)."""
        found = self.tags.get(norm) or self.kinds.get(kind)
        return found.cutoff if found is not None else 0.0

    def proposes(self, kind: str) -> bool:
        """Whether a tag of this kind can still be shown (by the kind's or its own cut-off)."""
        found = self.kinds.get(kind)
        if found is None or not found.never:
            return True
        return any(c.kind == kind and not c.never for c in self.tags.values())

    def notes(self, threshold: float) -> list[str]:
        """What the tagger says about them: each kind's, and a count of the tags'."""
        notes = [c.note() for c in self.kinds.values() if c.cutoff > threshold]
        raised = [c for c in self.tags.values() if c.cutoff > threshold]
        if raised:
            never = sum(1 for c in raised if c.never)
            notes.append(
                f"{len(raised)} tags need more confidence ({never} not proposed), learned "
                "from your reviews: "
                + "; ".join(c.note() for c in raised[:3])
                + ("; ..." if len(raised) > 3 else "")
            )
        return notes


def learn_cutoff(
    kind: str,
    pairs: Iterable[tuple[float, bool]],
    *,
    threshold: float,
    tag: str | None = None,
) -> Cutoff:
    """The cut-off from (confidence, kept) pairs (see the module docstring)."""
    ordered = sorted(pairs, key=lambda pair: -pair[0])
    kept = sum(1 for _confidence, was_kept in ordered if was_kept)
    best_net, best_cut, net = 0, NEVER, 0
    # Walk down the confidences; a cut can only fall between distinct values.
    for index, (confidence, was_kept) in enumerate(ordered):
        net += 1 if was_kept else -1
        last = index + 1 == len(ordered) or ordered[index + 1][0] < confidence
        if last and net >= best_net:  # on a tie, the lower cut-off: shows more
            best_net, best_cut = net, confidence
    if ordered and best_cut == ordered[-1][0]:
        best_cut = threshold  # showing every tag reviewed paid: no evidence to raise it
    return Cutoff(
        kind=kind,
        cutoff=max(threshold, best_cut) if best_cut <= 1.0 else NEVER,
        reviewed=len(ordered),
        kept=kept,
        # Against showing every tag reviewed (which nets `net` kept over removed).
        saved=best_net - net,
        tag=tag,
    )


@dataclass
class Reviews:
    """(confidence, kept) of reviewed automatic tags, newest first, per kind and per tag."""

    kinds: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    tags: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    kind_of: dict[str, str] = field(default_factory=dict)
    display: dict[str, str] = field(default_factory=dict)

    def add(self, state: dict[str, Any], kept: bool, window: int) -> None:
        norm, kind = state["norm"], state.get("kind", "topic")
        pair = (float(state["confidence"]), kept)
        by_kind = self.kinds.setdefault(kind, [])
        if len(by_kind) < window:
            by_kind.append(pair)
        by_tag = self.tags.setdefault(norm, [])
        if len(by_tag) < window:
            by_tag.append(pair)
            self.kind_of.setdefault(norm, kind)
            self.display.setdefault(norm, state.get("tag", norm))

    def cutoffs(self, *, threshold: float, min_reviews: int) -> Cutoffs:
        found = Cutoffs()
        for kind, pairs in self.kinds.items():
            if len(pairs) >= min_reviews:
                found.kinds[kind] = learn_cutoff(kind, pairs, threshold=threshold)
        for norm, pairs in self.tags.items():
            if len(pairs) >= min_reviews:
                found.tags[norm] = learn_cutoff(
                    self.kind_of[norm], pairs, threshold=threshold, tag=self.display[norm]
                )
        return found


def reviewed_tags(engine: Engine, window: int, skip: Collection[str] = ()) -> Reviews:
    """The automatic tags of the latest full reviews (``track-tag-edits --tags``).

    ``skip``: tags left out (those learned rules take away).
    """
    query = (
        select(user_feedback.c.original_value, user_feedback.c.corrected_value)
        .where(
            user_feedback.c.feedback_type == "tag_correction",
            user_feedback.c.source == "user",
        )
        .order_by(user_feedback.c.id.desc())
        .limit(_MAX_ROWS)
    )
    reviews = Reviews()
    with database_errors(engine), engine.connect() as connection:
        for original, corrected in connection.execute(query):
            try:
                after = json.loads(corrected)
                if after.get("scope") != "set":
                    continue
                final = {normalise_tag(tag) for tag in after["tags"]}
                before = json.loads(original)
                for state in before["tags"]:
                    if state.get("source") == "auto" and state["norm"] not in skip:
                        reviews.add(state, state["norm"] in final, window)
                # Held back by a cut-off: right if the user added it, wrong if not.
                for state in before.get("withheld", ()):
                    if state["norm"] not in skip:
                        reviews.add(state, state["norm"] in final, window)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a row in a layout this version does not know is not evidence
    return reviews


def learned_cutoffs(config: TaggingSettings, engine: Engine) -> Cutoffs:
    """The learned cut-offs; none when switched off or nothing was reviewed yet.

    Cached per database and newest feedback row: tagging several batches between
    two edits reads the reviews once.
    """
    if not config.learn_cutoffs:
        return Cutoffs()
    with database_errors(engine), engine.connect() as connection:
        newest = connection.execute(select(func.max(user_feedback.c.id))).scalar()
        ruled = load_rules(connection, enabled_only=True, types=("tag_removal", "tag_mapping"))
    if newest is None:
        return Cutoffs()
    taken = tuple(sorted({tag for rule in ruled if (tag := rule.takes_away) is not None}))
    key = (
        engine.url.render_as_string(hide_password=False),
        newest,
        taken,
        config.threshold,
        config.cutoff_min_reviews,
        config.cutoff_window,
    )
    return CACHES.cutoffs.get(
        key,
        lambda: reviewed_tags(engine, config.cutoff_window, taken).cutoffs(
            threshold=config.threshold, min_reviews=config.cutoff_min_reviews
        ),
    )
