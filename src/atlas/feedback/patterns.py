"""Mining the feedback for patterns that can become rules.

All feedback rows are read once, in bulk, and folded into one observation per item
and kind (tags, genre, file location): what Atlas showed before the user's first
review (with the effect of learned rules taken back out, so that rules do not
blur the evidence they came from), what the user left at their latest edit, and a
weight ``confidence_score * 0.5 ** (age_days / feedback.half_life_days)`` of that
latest edit (age in whole hours). Undo rows are not mined (an undo is judged, not
learned from).

For every pattern, counted over distinct items:

* **observed** — reviewed items where the pattern's condition held (for a tag
  mapping: every reviewed item where Atlas predicted the tag and the user's tag
  was not there yet, corrected or not; for a tag removal, also every item the
  user added the tag to themselves);
* **support** — of those, the items the user left the way the rule would have;
* **confidence** — the same share, weighted, with one imagined hit and one
  imagined miss added (Laplace's rule of succession): ``(hits_w + 1) /
  (observed_w + 2)``, the rule's expected precision. 3 of 3 gives 0.80, 30 of 30
  0.97: a few lucky coincidences do not make a confident rule. Additions are
  sought over every context and every tag, so chance finds some that hold on a
  handful of items; their confidence is shrunk harder, towards how often the user
  adds the tag anyway (``base``, over reviewed items that lacked it):
  ``(hits_w + 10 * base) / (observed_w + 10)``.

A pattern must also have been an actual correction on at least ``min_frequency``
items. Families: tag mappings (A predicted, replaced by B), tag removals (A
predicted and removed, optionally only with a genre, a media type or in a
folder), tag additions (B added when a genre, another tag, a word of the title /
description / transcript, a folder or a media type holds, or always), genre
corrections (X -> Y), genre enhancements (empty genre set to Y when tagged T), and
file organisation (items tagged T, or with genre G, moved into folder F).

Two passes keep it fast: the first counts actual corrections to find candidates
(and skips those whose confidence cannot reach the floor), the second measures
only the candidates against every reviewed item. The counting is done on sparse
0/1 matrices over the reviewed items (tags shown, predicted, removed and added;
contexts; words): column sums count, products count pairs. Additions pair every
frequent tag with every frequent context, far too many pairs to measure item by
item: they are measured as matrix products too (:class:`_Additions`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, or_, select

from atlas.config import FeedbackSettings
from atlas.db import utcnow
from atlas.db.tables import user_feedback
from atlas.errors import InvalidInput
from atlas.feedback.context import MediaContext, load_contexts, normalise_genre
from atlas.feedback.rules import Rule, describe, pattern_key
from atlas.media.tags import normalise_tag

__all__ = ["MAX_REPORTED", "MiningResult", "Pattern", "mine_patterns"]

#: Additions are searched over every context (each word, each tag) and every tag
#: the user adds, so some hold on a few items by chance: their confidence is
#: shrunk towards the tag's base rate as if this many more items had been seen.
ADDITION_PRIOR = 10.0
#: At most this many patterns add the same tag (the most precise ones).
MAX_CONTEXTS_PER_TAG = 5
#: A report lists at most this many patterns (the rules are all stored).
MAX_REPORTED = 1000
_EXAMPLES = 5
#: Context features are ``kind<SEP>value`` strings (cheap to hash, many of them).
_SEP = "\x1f"
_ANY = "any" + _SEP


@dataclass
class Pattern:
    rule_type: str
    key: str
    condition: dict[str, Any]
    action: dict[str, Any]
    support: int
    observed: int
    confidence: float
    examples: list[int]
    #: In plain words, with the evidence (filled in for the patterns reported).
    description: str = ""
    #: Over both thresholds: becomes (or keeps) a rule.
    qualifies: bool = False
    #: Tag mappings: items where the user's edit paired exactly these two tags.
    paired: int = 0

    def to_rule(self) -> Rule:
        return Rule(
            id=None,
            rule_type=self.rule_type,
            condition=self.condition,
            action=self.action,
            confidence=self.confidence,
            description=self.description,
            support=self.support,
            observed=self.observed,
            examples=list(self.examples),
            pattern_key=self.key,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_type": self.rule_type,
            "description": self.description,
            "support": self.support,
            "observed": self.observed,
            "confidence": round(self.confidence, 4),
            "examples": self.examples,
            "qualifies": self.qualifies,
            "condition": self.condition,
            "action": self.action,
        }


@dataclass
class MiningResult:
    patterns: list[Pattern] = field(default_factory=list)
    feedback_rows: int = 0
    items: int = 0
    min_frequency: int = 3
    min_confidence: float = 0.6
    seconds: float = 0.0
    #: Every candidate measured, qualifying or not: key -> (support, confidence).
    measured: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def qualifying(self) -> list[Pattern]:
        return [pattern for pattern in self.patterns if pattern.qualifies]

    def to_dict(self) -> dict[str, Any]:
        """The result as data; at most :data:`MAX_REPORTED` patterns (strongest first)."""
        return {
            "feedback_rows": self.feedback_rows,
            "items": self.items,
            "min_frequency": self.min_frequency,
            "min_confidence": self.min_confidence,
            "seconds": round(self.seconds, 3),
            "patterns_found": len(self.patterns),
            "qualifying": len(self.qualifying),
            "patterns": [pattern.to_dict() for pattern in self.patterns[:MAX_REPORTED]],
        }


class _TagObs:
    __slots__ = ("final", "pre", "w")

    def __init__(self) -> None:
        self.pre: dict[str, tuple[str, str, str]] = {}  # norm -> (source, kind, display)
        self.final: set[str] = set()
        self.w = 0.0


class _Reviewed(NamedTuple):
    """One reviewed item as tag mining sees it."""

    media_id: int
    obs: _TagObs
    #: Tags Atlas predicted (source ``auto``).
    predicted: set[str]
    #: Of those, the ones the user removed.
    removed: set[str]
    #: Tags the user added that Atlas had not shown.
    added: set[str]
    #: The contexts a removal may be limited to.
    narrow: list[str]
    context: MediaContext | None


class _Measure:
    """Weighted and counted hits over the items where a candidate's condition held."""

    __slots__ = ("examples", "held_n", "held_w", "hit_n", "hit_w")

    def __init__(self) -> None:
        self.held_w = self.hit_w = 0.0
        self.held_n = self.hit_n = 0
        self.examples: list[int] = []

    def add(self, weight: float, hit: bool, media_id: int) -> None:
        self.held_w += weight
        self.held_n += 1
        if hit:
            self.hit_w += weight
            self.hit_n += 1
            if len(self.examples) < _EXAMPLES:
                self.examples.append(media_id)

    @property
    def confidence(self) -> float:
        # Laplace's rule of succession: one imagined hit and one imagined miss, so
        # that 3 of 3 is not taken for certainty (small samples overfit, and each
        # overfitted rule costs the user reversals before it is switched off).
        return (self.hit_w + 1.0) / (self.held_w + 2.0)


def mine_patterns(
    connection: Connection,
    settings: FeedbackSettings,
    *,
    min_frequency: int | None = None,
    min_confidence: float | None = None,
    now: datetime | None = None,
) -> MiningResult:
    """Find the patterns in all feedback; those over both thresholds qualify as rules."""
    started = time.perf_counter()
    min_frequency = settings.min_frequency if min_frequency is None else min_frequency
    min_confidence = settings.min_confidence if min_confidence is None else min_confidence
    if min_frequency < 1:
        raise InvalidInput(f"--min-frequency must be at least 1, got {min_frequency}")
    result = MiningResult(min_frequency=min_frequency, min_confidence=min_confidence)
    with _cyclic_gc_paused():
        # The miner's observations are gone by the time the collector runs again.
        _mine(connection, _Miner(settings, now or utcnow()), result)
    for pattern in result.patterns:
        pattern.description = describe(
            pattern.rule_type,
            pattern.condition,
            pattern.action,
            support=pattern.support,
            observed=pattern.observed,
            confidence=pattern.confidence,
            examples=pattern.examples,
        )
    result.seconds = time.perf_counter() - started
    return result


def _mine(connection: Connection, miner: _Miner, result: MiningResult) -> None:
    result.feedback_rows = miner.read(connection)
    items = miner.items()
    result.items = len(items)
    if items:
        miner.contexts = load_contexts(connection, items, protections=False)
    found: list[Pattern] = []
    found += miner.tag_patterns(result.min_frequency, result.min_confidence)
    found += miner.genre_patterns(result.min_frequency)
    found += miner.move_patterns(result.min_frequency)
    for pattern in found:
        result.measured[pattern.key] = (pattern.support, pattern.confidence)
        pattern.qualifies = (
            pattern.support >= result.min_frequency and pattern.confidence >= result.min_confidence
        )
    result.patterns = _prune([p for p in found if p.support >= result.min_frequency])
    miner.find_examples(result.patterns)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while mining builds its observations.

    Mining makes millions of small, acyclic, long-lived objects; each collection
    would walk them all again (a third of mining's time at 100,000 items).
    Reference counting still frees what is dropped.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Miner:
    def __init__(self, settings: FeedbackSettings, now: datetime) -> None:
        self.half_life_s = settings.half_life_days * 86400.0
        self.now = now
        self.tags: dict[int, _TagObs] = {}
        self.genres: dict[
            int, list[Any]
        ] = {}  # id -> [pre norm, pre display, final norm, final display, w]
        self.moves: dict[int, tuple[str, float]] = {}  # id -> (final folder, w)
        self.user_display: dict[str, str] = {}
        #: Spelling -> norm (the norms stored with the tags, else normalised once).
        self.norm_of = _Norms()
        self.paired: Counter[tuple[str, str]] = Counter()
        self.atlas_display: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.contexts: dict[int, MediaContext] = {}
        self.additions: _Additions | None = None
        #: Addition patterns (by key) -> (tag, feature): their examples are found once kept.
        self.addition_keys: dict[str, tuple[str, str]] = {}
        # Per tag, the weight of reviewed items Atlas showed it on, and that the user added it to.
        self.pre_w: dict[str, float] = {}
        self.added_w: dict[str, float] = {}
        self.total_w = 0.0

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
        tag_rows: dict[int, list[Any]] = {}
        for media_id, kind, original, corrected, confidence, stamp in connection.execute(query):
            count += 1
            # Whole hours: corrections of the same session weigh the same.
            age = max(0.0, round((now_s - stamp.timestamp()) / 3600) * 3600.0)
            weight = (1.0 if confidence is None else confidence) * 0.5 ** (age / self.half_life_s)
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
        pre: dict[str, tuple[str, str, str]] = {}
        for state in before["tags"]:
            norm, source, tag = state["norm"], state["source"], state["tag"]
            kind = state.get("kind", "topic")
            if norm not in atlas_display:  # the first spelling and kind seen
                atlas_display[norm], kinds[norm] = tag, kind
            if source != "rule":  # a rule put it there: not what Atlas predicted
                pre[norm] = (source, kind, tag)
            norm_of[tag] = norm
        for state in before.get("rules", {}).get("removed", ()):
            pre.setdefault(state["norm"], ("auto", state.get("kind", "topic"), state["tag"]))
        if last is not None:
            before = orjson.loads(last[0])
            for state in before["tags"]:  # predictions made after the first review
                if state["source"] == "auto" and state["norm"] not in pre:
                    pre[state["norm"]] = ("auto", state.get("kind", "topic"), state["tag"])
            for state in before.get("rules", {}).get("removed", ()):
                pre.setdefault(state["norm"], ("auto", state.get("kind", "topic"), state["tag"]))
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
        obs = self.tags[media_id] = _TagObs()
        obs.pre, obs.final, obs.w = pre, final, weight

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

    def _context(self, media_id: int) -> MediaContext | None:
        return self.contexts.get(media_id)

    def _display(self, norm: str) -> str:
        return self.user_display.get(norm) or self.atlas_display.get(norm) or norm

    # -- tags ----------------------------------------------------------------------

    def tag_patterns(self, min_frequency: int, min_confidence: float) -> list[Pattern]:
        import numpy as np

        observations: list[_Reviewed] = []
        for media_id, obs in self.tags.items():
            pre, final = obs.pre, obs.final
            predicted = {norm for norm, value in pre.items() if value[0] == "auto"}
            added = final - pre.keys()
            context = self.contexts.get(media_id)
            narrow = _narrow_features(context)
            observations.append(
                _Reviewed(media_id, obs, predicted, predicted - final, added, narrow, context)
            )
        # Every item's tags and contexts at once, as sparse 0/1 matrices (rows in
        # ``observations`` order): column sums count them, weighted sums weigh them,
        # products count pairs.
        rows = _ReviewedRows(observations)
        pre_count = rows.shown.counts()
        added_count = rows.added.counts()
        predicted_count = rows.predicted.counts()
        self.total_w = float(rows.weights.sum())
        self.pre_w = rows.shown.weighted(rows.weights)
        self.added_w = rows.added.weighted(rows.weights)
        # Pairs of a removed tag with a context or an added tag count only for tags
        # removed, and added, on min_frequency items.
        often_removed = rows.removed.frequent(min_frequency)
        rem_ctx = set(often_removed.pairs(rows.narrow, min_frequency))
        map_count = often_removed.pairs(rows.added.frequent(min_frequency), min_frequency)

        # A candidate is measured only if its confidence could reach the floor:
        # its corrections are its only hits, and it held on at least (items with
        # the condition) - (items that already had the tag). Weights are bounded
        # by the lightest and heaviest observation, so the bound is exact.
        weights = rows.weights if len(rows.weights) else np.ones(1)
        light, heavy = max(float(weights.min()), 1e-12), float(weights.max())

        def may_qualify(hits: int, held_at_least: int) -> bool:
            misses = max(0, held_at_least - hits)
            best = heavy * hits + 1.0
            return best >= min_confidence * (best + light * misses + 1.0)

        # An addition's confidence is shrunk towards its tag's base rate, so it needs
        # at least this many hits to reach the floor even if it never missed.
        def fewest_hits(b: str) -> float:
            base = self._base_rate(b)
            if base >= min_confidence:
                return float(min_frequency)
            if min_confidence >= 1.0:
                return float("inf")
            needed = ADDITION_PRIOR * (min_confidence - base) / (heavy * (1.0 - min_confidence))
            return max(float(min_frequency), needed)

        needed = {b: fewest_hits(b) for b, count in added_count.items() if count >= min_frequency}
        frequent_tags = {b for b, hits in needed.items() if added_count[b] >= hits}
        floor = min((needed[b] for b in frequent_tags), default=float("inf"))

        map_by_a: dict[str, list[str]] = {}
        for (a, b), count in map_count.items():
            if may_qualify(count, predicted_count[a] - pre_count[b]):
                map_by_a.setdefault(a, []).append(b)
        rem_keys = set(often_removed.names)
        del map_count

        measures: dict[tuple[str, str, str], _Measure] = {}
        for media_id, obs, predicted, _removed, added, narrow, _context in observations:
            pre, final, w = obs.pre, obs.final, obs.w
            for a in predicted & map_by_a.keys():
                gone = a not in final
                for b in map_by_a[a]:
                    if b not in pre:  # else the rule only removes (a removal's case)
                        key = ("map", a, b)
                        found = measures.get(key) or measures.setdefault(key, _Measure())
                        found.add(w, gone and b in final, media_id)
            # Where the user added the tag themselves, removing it would have been
            # wrong: a tag the user wants elsewhere is not removed always (the
            # tagger's learned cut-offs raise the bar for it instead).
            for a in chain(predicted & rem_keys, added & rem_keys):
                gone = a not in final
                for feature in (_ANY, *narrow):
                    if feature is _ANY or (a, feature) in rem_ctx:
                        key = ("rem", a, feature)
                        found = measures.get(key) or measures.setdefault(key, _Measure())
                        found.add(w, gone, media_id)
        # Only tags added, and contexts seen, on that many items can make an
        # addition pattern: only those take part (the words of the items' texts are
        # by far the most contexts).
        held = rows.features().frequent(floor) if frequent_tags else None
        if held is not None and held.names:
            tags = sorted(frequent_tags)
            needed_of = np.array([needed[b] for b in tags])
            base_of = np.array([self._base_rate(b) for b in tags])
            shown_of = np.array([pre_count[b] for b in tags], dtype=np.float64)

            def may_qualify_additions(b: Any, feature_items: Any, hits: Any) -> Any:
                """Per pair (tag index, its hits, items of its feature): may it qualify?"""
                misses = np.maximum(0.0, feature_items - shown_of[b] - hits)
                best = heavy * hits + ADDITION_PRIOR * base_of[b]
                return (hits >= needed_of[b]) & (
                    best >= min_confidence * (heavy * hits + light * misses + ADDITION_PRIOR)
                )

            self.additions = _Additions(
                rows.media_ids,
                rows.weights,
                rows.added.columns(tags),
                rows.shown.columns(tags),
                held,
            )
            measures.update(self.additions.measure(may_qualify_additions))

        patterns = []
        for key, found in measures.items():
            pattern = self._tag_pattern(key, found)
            if key[0] == "map":
                pattern.paired = self.paired.get((key[1], key[2]), 0)
            elif key[0] == "add":
                self.addition_keys[pattern.key] = (key[1], key[2])
            patterns.append(pattern)
        return patterns

    def _base_rate(self, b: str) -> float:
        """How often the user adds ``b`` to a reviewed item Atlas did not show it on."""
        lacking = self.total_w - self.pre_w.get(b, 0.0)
        return self.added_w.get(b, 0.0) / lacking if lacking > 0 else 0.0

    def _tag_pattern(self, key: tuple[str, str, str], found: _Measure) -> Pattern:
        family = key[0]
        if family == "map":
            _, a, b = key
            rule_type = "tag_mapping"
            condition: dict[str, Any] = {"all": [{"has_tag": a, "sources": ["auto"]}]}
            action: dict[str, Any] = {
                "op": "replace_tag",
                "from": a,
                "from_display": self.atlas_display.get(a, a),
                "to": b,
                "display": self._display(b),
            }
            parts: tuple[Any, ...] = (rule_type, a, b)
        elif family == "rem":
            _, a, feature = key
            rule_type = "tag_removal"
            clauses: list[dict[str, Any]] = [{"has_tag": a, "sources": ["auto"]}]
            if feature != _ANY:
                clauses.append(_clause(feature))
            condition = {"all": clauses}
            action = {"op": "remove_tag", "tag": a, "display": self.atlas_display.get(a, a)}
            parts = (rule_type, a, feature)
        else:
            _, b, feature = key
            rule_type = "tag_addition"
            clauses = [] if feature == _ANY else [_clause(feature)]
            clauses.append({"lacks_tag": b})
            condition = {"all": clauses}
            action = {
                "op": "add_tag",
                "tag": b,
                "display": self._display(b),
                "kind": self.kinds.get(b, "topic"),
            }
            parts = (rule_type, b, feature)
            # Shrunk towards how often the user adds b anyway (see ADDITION_PRIOR).
            base = self._base_rate(b)
            confidence = (found.hit_w + ADDITION_PRIOR * base) / (found.held_w + ADDITION_PRIOR)
            return _pattern(rule_type, parts, condition, action, found, confidence)
        return _pattern(rule_type, parts, condition, action, found)

    # -- genres ----------------------------------------------------------------------

    def genre_patterns(self, min_frequency: int) -> list[Pattern]:
        fix_count: Counter[tuple[str, str]] = Counter()
        fill_count: Counter[tuple[str, str]] = Counter()
        displays: dict[str, str] = {}
        old_displays: dict[str, str] = {}
        for media_id, (old, old_display, new, new_display, _w) in self.genres.items():
            if new is None:
                continue
            displays[new] = new_display
            if old is not None:
                old_displays.setdefault(old, old_display)
                if old != new:
                    fix_count[(old, new)] += 1
            else:
                context = self._context(media_id)
                if context is not None:
                    fill_count.update((tag, new) for tag in context.tags)
        fixes: dict[str, list[str]] = {}
        for (old, new), count in fix_count.items():
            if count >= min_frequency:
                fixes.setdefault(old, []).append(new)
        fills: dict[str, list[str]] = {}
        for (tag, new), count in fill_count.items():
            if count >= min_frequency:
                fills.setdefault(tag, []).append(new)

        measures: dict[tuple[str, str, str], _Measure] = {}
        for media_id, (old, _od, new, _nd, w) in self.genres.items():
            if old is not None:
                for target in fixes.get(old, ()):
                    measures.setdefault(("fix", old, target), _Measure()).add(
                        w, new == target, media_id
                    )
                continue
            context = self._context(media_id)
            if context is None:
                continue
            for tag in context.tags.keys() & fills.keys():
                for target in fills[tag]:
                    measures.setdefault(("fill", tag, target), _Measure()).add(
                        w, new == target, media_id
                    )

        patterns = []
        for (family, source, target), found in measures.items():
            if family == "fix":
                rule_type = "genre_correction"
                condition: dict[str, Any] = {"all": [{"genre": source}]}
                action: dict[str, Any] = {
                    "op": "set_genre",
                    "to": displays[target],
                    "from_display": old_displays.get(source, source),
                }
            else:
                rule_type = "metadata_enhancement"
                condition = {"all": [{"genre": None}, {"has_tag": source}]}
                action = {"op": "set_genre", "to": displays[target]}
            patterns.append(
                _pattern(rule_type, (rule_type, source, target), condition, action, found)
            )
        return patterns

    # -- file locations ----------------------------------------------------------------

    def move_patterns(self, min_frequency: int) -> list[Pattern]:
        counts: Counter[tuple[str, str]] = Counter()
        observations = []
        for media_id, (folder, w) in self.moves.items():
            context = self._context(media_id)
            if context is None:
                continue
            features = {"tag" + _SEP + norm for norm in context.tags}
            if context.genre_norm:
                features.add("genre" + _SEP + context.genre_norm)
            observations.append((media_id, folder, w, features))
            counts.update((feature, folder) for feature in features)
        candidates: dict[str, list[str]] = {}
        for (feature, folder), count in counts.items():
            if count >= min_frequency:
                candidates.setdefault(feature, []).append(folder)
        measures: dict[tuple[str, str], _Measure] = {}
        for media_id, folder, w, features in observations:
            for feature in features & candidates.keys():
                for target in candidates[feature]:
                    measures.setdefault((feature, target), _Measure()).add(
                        w, folder == target, media_id
                    )
        patterns = []
        for (feature, folder), found in measures.items():
            rule_type = "file_organisation"
            condition = {"all": [_clause(feature)]}
            action = {"op": "move_to_folder", "folder": folder}
            patterns.append(
                _pattern(rule_type, (rule_type, feature, folder), condition, action, found)
            )
        return patterns


class _Additions:
    """Count, choose and measure the additions "tag b is added where feature f holds".

    Every frequent tag is paired with every frequent feature, too many pairs to
    count one by one, so the reviewed items become sparse 0/1 matrices (rows in
    ``observations`` order): ``added`` (the user added b), ``shown`` (Atlas
    showed b, so adding it was not needed) and ``held`` (f holds). ``added.T @
    held`` counts each pair's corrections; ``may_qualify(b, items with f, hits)``
    keeps the candidates; a candidate is measured over the items where f holds
    and b was not shown (``held`` less ``shown.T @ held``). Its examples (the
    first :data:`_EXAMPLES` items where b was added and f holds) are looked up
    only for the patterns kept (:meth:`examples`).
    """

    def __init__(
        self, media_ids: Any, weights: Any, added: _Incidence, shown: _Incidence, held: _Incidence
    ) -> None:
        self.media_ids, self.weights = media_ids, weights
        self.tags, self.features = added.names, held.names
        self.tag_index = {b: i for i, b in enumerate(self.tags)}
        self.feature_index = {f: i for i, f in enumerate(self.features)}
        self.added, self.shown, self.held = added.matrix, shown.matrix, held.matrix

    def measure(
        self, may_qualify: Callable[[Any, Any, Any], Any]
    ) -> dict[tuple[str, str, str], _Measure]:
        import numpy as np
        from scipy import sparse

        added, shown, held = self.added, self.shown, self.held
        feature_items = np.asarray(held.sum(axis=0)).ravel()
        counts = (added.T @ held).tocoo()
        chosen = may_qualify(counts.row, feature_items[counts.col], counts.data)
        b, f = counts.row[chosen], counts.col[chosen]
        if not len(b):
            return {}
        weighted = sparse.diags(self.weights)
        hit_n = counts.data[chosen]
        hit_w = np.asarray(((weighted @ added).T @ held)[b, f]).ravel()
        held_n = feature_items[f] - np.asarray((shown.T @ held)[b, f]).ravel()
        held_w = (held.T @ self.weights)[f] - np.asarray(
            ((weighted @ shown).T @ held)[b, f]
        ).ravel()
        measures = {}
        for i, (tag, feature) in enumerate(zip(b.tolist(), f.tolist(), strict=True)):
            found = measures[("add", self.tags[tag], self.features[feature])] = _Measure()
            found.hit_n, found.hit_w = int(hit_n[i]), float(hit_w[i])
            found.held_n, found.held_w = int(held_n[i]), float(held_w[i])
        return measures

    @functools.cached_property
    def _by_column(self) -> tuple[Any, Any]:
        """``added`` and ``held`` by column (CSC), rows ascending."""
        by_tag, by_feature = self.added.tocsc(), self.held.tocsc()
        by_tag.sort_indices()
        by_feature.sort_indices()
        return by_tag, by_feature

    def examples(self, tag: str, feature: str) -> list[int]:
        """The first items (in reading order) where ``tag`` was added and ``feature`` holds."""
        import numpy as np

        b, f = self.tag_index[tag], self.feature_index[feature]
        by_tag, by_feature = self._by_column
        items = by_tag.indices[by_tag.indptr[b] : by_tag.indptr[b + 1]]
        holding = by_feature.indices[by_feature.indptr[f] : by_feature.indptr[f + 1]]
        both = items[np.isin(items, holding, assume_unique=True)][:_EXAMPLES]
        return self.media_ids[both].tolist()


class _Norms(dict[str, str]):
    """Tag spelling -> norm, each spelling normalised once."""

    def __missing__(self, tag: str) -> str:
        norm = self[tag] = normalise_tag(tag)
        return norm


class _Incidence:
    """Rows of distinct names as a sparse 0/1 matrix (CSR, sorted indices) and its columns."""

    def __init__(self, matrix: Any, names: list[str]) -> None:
        self.matrix, self.names = matrix, names

    @classmethod
    def of(cls, rows: Sequence[Collection[str]]) -> _Incidence:
        """Row i has ones in the columns of the names in ``rows[i]`` (distinct)."""
        import numpy as np
        from scipy import sparse

        index: defaultdict[str, int] = defaultdict()
        index.default_factory = index.__len__  # a new name: the next column
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, rows), np.int64, len(rows)), out=indptr[1:])
        names = chain.from_iterable(rows)
        indices = np.fromiter(map(index.__getitem__, names), np.int64, int(indptr[-1]))
        shape = (len(rows), len(index))
        matrix = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=shape)
        matrix.sort_indices()
        return cls(matrix, list(index))

    def counts(self) -> Counter[str]:
        """Rows holding each name."""
        return Counter(dict(zip(self.names, self._column_counts().tolist(), strict=True)))

    def weighted(self, weights: Any) -> dict[str, float]:
        """The weight of the rows holding each name."""
        return dict(zip(self.names, (self.matrix.T @ weights).tolist(), strict=True))

    def columns(self, names: list[str]) -> _Incidence:
        """Only these columns, in this order (a name in no row: a column of zeros)."""
        import numpy as np
        from scipy import sparse

        rows, width = self.matrix.shape
        index = {name: i for i, name in enumerate(self.names)}
        order = np.fromiter((index.get(name, width) for name in names), np.int64, len(names))
        padded = sparse.hstack([self.matrix, sparse.csr_matrix((rows, 1))], format="csr")
        return _Incidence(_sorted(padded[:, order]), list(names))

    def frequent(self, least: float) -> _Incidence:
        """Only the columns of names held by at least ``least`` rows."""
        import numpy as np

        keep = np.flatnonzero(self._column_counts() >= least)
        return _Incidence(_sorted(self.matrix[:, keep]), [self.names[i] for i in keep.tolist()])

    def pairs(self, other: _Incidence, least: int) -> dict[tuple[str, str], int]:
        """(name here, name there) -> rows holding both, for the pairs in at least ``least``."""
        import numpy as np

        counts = (self.matrix.T @ other.matrix).tocoo()
        keep = np.flatnonzero(counts.data >= least)
        return {
            (self.names[a], other.names[b]): int(count)
            for a, b, count in zip(
                counts.row[keep].tolist(),
                counts.col[keep].tolist(),
                counts.data[keep].tolist(),
                strict=True,
            )
        }

    @staticmethod
    def joined(parts: list[_Incidence]) -> _Incidence:
        """Side by side (the same rows)."""
        from scipy import sparse

        matrix = sparse.hstack([part.matrix for part in parts], format="csr")
        return _Incidence(_sorted(matrix), [name for part in parts for name in part.names])

    def _column_counts(self) -> Any:
        import numpy as np

        return np.bincount(self.matrix.indices, minlength=self.matrix.shape[1])


def _sorted(matrix: Any) -> Any:
    matrix = matrix.tocsr()
    matrix.sort_indices()
    return matrix


class _ReviewedRows:
    """The reviewed items (``observations`` order) as :class:`_Incidence` matrices."""

    def __init__(self, observations: list[_Reviewed]) -> None:
        import numpy as np

        count = len(observations)
        self.observations = observations
        self.media_ids = np.fromiter((o.media_id for o in observations), np.int64, count)
        self.weights = np.fromiter((o.obs.w for o in observations), np.float64, count)
        #: Tags Atlas showed (predicted: automatic ones), removed, and added.
        self.shown = _Incidence.of([o.obs.pre.keys() for o in observations])
        self.predicted = _Incidence.of([o.predicted for o in observations])
        self.removed = _Incidence.of([o.removed for o in observations])
        self.added = _Incidence.of([o.added for o in observations])
        #: The contexts a removal may be limited to.
        self.narrow = _Incidence.of([o.narrow for o in observations])

    def features(self) -> _Incidence:
        """Every context an addition can be conditioned on: always, the narrow
        contexts, each tag shown (``tag<SEP>norm``) and each word."""
        import numpy as np
        from scipy import sparse

        observations = self.observations
        always = _Incidence(sparse.csr_matrix(np.ones((len(observations), 1))), [_ANY])
        narrow = self.narrow
        tags = _Incidence(self.shown.matrix, ["tag" + _SEP + norm for norm in self.shown.names])
        words = _Incidence.of(
            [o.context.words if o.context is not None else () for o in observations]
        )
        words.names = ["word" + _SEP + word for word in words.names]
        return _Incidence.joined([always, narrow, tags, words])


def _narrow_features(context: MediaContext | None) -> list[str]:
    """The contexts a removal may be limited to (and an addition conditioned on)."""
    if context is None:
        return []
    features = ["type" + _SEP + context.media_type]
    if context.genre_norm:
        features.append("genre" + _SEP + context.genre_norm)
    if context.folder:
        features.append("folder" + _SEP + context.folder)
    return features


def _clause(feature: str) -> dict[str, Any]:
    """The condition clause of a context feature (``kind<SEP>value``)."""
    kind, _, value = feature.partition(_SEP)
    name = {
        "genre": "genre",
        "type": "media_type",
        "folder": "in_folder",
        "tag": "has_tag",
        "word": "word",
    }[kind]
    return {name: value}


def _pattern(
    rule_type: str,
    parts: Iterable[Any],
    condition: dict[str, Any],
    action: dict[str, Any],
    found: _Measure,
    confidence: float | None = None,
) -> Pattern:
    confidence = found.confidence if confidence is None else confidence
    return Pattern(
        rule_type=rule_type,
        key=pattern_key(*parts),
        condition=condition,
        action=action,
        support=found.hit_n,
        observed=found.held_n,
        confidence=confidence,
        examples=sorted(found.examples),
    )


def _prune(patterns: list[Pattern]) -> list[Pattern]:
    """Drop patterns that could never act or that a better one covers; strongest first.

    Per predicted tag only the best mapping is kept (once it replaced the tag, no
    other mapping of it can act). A removal or addition limited to a context is
    kept only when it is more precise than the same change everywhere. An
    addition conditioned on a tag that a kept mapping already replaces is
    dropped, and at most :data:`MAX_CONTEXTS_PER_TAG` contexts add the same tag.
    """
    order = {name: index for index, name in enumerate(_ORDER)}
    ranked = sorted(
        patterns,
        key=lambda p: (
            order.get(p.rule_type, len(order)),
            not p.qualifies,
            -round(p.confidence, 6),
            -p.paired,
            -p.support,
            p.key,
        ),
    )
    plain: dict[tuple[str, str], Pattern] = {}
    for pattern in ranked:
        if pattern.rule_type in ("tag_removal", "tag_addition") and _context_of(pattern) is None:
            plain[(pattern.rule_type, _tag_of(pattern))] = pattern
    kept: list[Pattern] = []
    mapped: dict[str, str] = {}
    per_tag: Counter[str] = Counter()
    for pattern in ranked:
        if pattern.rule_type == "tag_mapping":
            source = pattern.action["from"]
            if source in mapped:
                continue
            if pattern.qualifies:
                mapped[source] = pattern.action["to"]
        elif pattern.rule_type in ("tag_removal", "tag_addition"):
            tag = _tag_of(pattern)
            context = _context_of(pattern)
            if context is not None:
                general = plain.get((pattern.rule_type, tag))
                if general is not None and (
                    general.qualifies or general.confidence >= pattern.confidence
                ):
                    continue
            if pattern.rule_type == "tag_addition":
                if context is not None and mapped.get(context.get("has_tag", "")) == tag:
                    continue
                per_tag[tag] += 1
                if per_tag[tag] > MAX_CONTEXTS_PER_TAG:
                    continue
        kept.append(pattern)
    return kept


_ORDER = (
    "tag_mapping",
    "tag_removal",
    "tag_addition",
    "genre_correction",
    "metadata_enhancement",
    "file_organisation",
)


def _tag_of(pattern: Pattern) -> str:
    return str(pattern.action["tag"])


def _context_of(pattern: Pattern) -> dict[str, Any] | None:
    """The context clause of a removal or addition (None: everywhere)."""
    for clause in pattern.condition["all"]:
        if "lacks_tag" in clause or ("has_tag" in clause and clause.get("sources")):
            continue
        return dict(clause)
    return None
