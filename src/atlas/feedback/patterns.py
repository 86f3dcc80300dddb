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
item: they are measured as matrix products too (:class:`Additions`).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import orjson
from sqlalchemy import Connection

from atlas.config import FeedbackSettings
from atlas.db import utcnow
from atlas.errors import InvalidInput
from atlas.feedback.context import load_contexts
from atlas.feedback.genre_patterns import genre_patterns, move_patterns
from atlas.feedback.observations import Observations
from atlas.feedback.pattern_model import (
    MAX_CONTEXTS_PER_TAG,
    MAX_REPORTED,
    MiningResult,
    Pattern,
)
from atlas.feedback.tag_patterns import tag_patterns
from atlas.feedback.wording import describe

__all__ = ["MAX_REPORTED", "MiningResult", "Pattern", "mine_patterns"]


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
        raise InvalidInput(f"`min_frequency` must be at least 1, got {min_frequency}")
    result = MiningResult(min_frequency=min_frequency, min_confidence=min_confidence)
    with _cyclic_gc_paused():
        # The miner's observations are gone by the time the collector runs again.
        _mine(connection, Observations(settings, now or utcnow()), result)
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


def _mine(connection: Connection, miner: Observations, result: MiningResult) -> None:
    result.feedback_rows = miner.read(connection)
    items = miner.items()
    result.items = len(items)
    if items:
        # Only genre and file patterns read the items' stored tags.
        miner.contexts = load_contexts(
            connection,
            items,
            protections=False,
            tags_of=miner.genres.keys() | miner.moves.keys(),
            word_text=miner.word_text,
        )
    found: list[Pattern] = []
    found += tag_patterns(miner, result.min_frequency, result.min_confidence)
    found += genre_patterns(miner, result.min_frequency)
    found += move_patterns(miner, result.min_frequency)
    if miner.evidence is not None:
        result.contradictions = list(miner.evidence.contradictions)
    for pattern in found:
        result.measured[pattern.key] = (pattern.support, pattern.confidence)
        pattern.qualifies = (
            pattern.support >= result.min_frequency
            and pattern.confidence >= result.min_confidence
            and not pattern.contradicted
        )
        if pattern.contradicted:
            result.refused[pattern.key] = (
                "your corrections of this tag contradict each other (added on some items of "
                "this kind, removed on others)"
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


def _prune(patterns: list[Pattern]) -> list[Pattern]:
    """Drop patterns that could never act or that a better one covers; strongest first.

    Per predicted tag only the best mapping is kept (once it replaced the tag, no
    other mapping of it can act). A removal or addition limited to a context is
    kept only when it is more precise than the same change everywhere. An
    addition conditioned on a tag that a kept mapping already replaces is
    dropped, two candidates that became the same rule once narrowed to their
    evidence are kept once, and at most :data:`MAX_CONTEXTS_PER_TAG` contexts add the same tag.
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
        if pattern.rule_type in ("tag_removal", "tag_addition") and pattern.general:
            plain[(pattern.rule_type, _tag_of(pattern))] = pattern
    kept: list[Pattern] = []
    mapped: dict[str, str] = {}
    per_tag: Counter[str] = Counter()
    seen: set[bytes] = set()
    for pattern in ranked:
        # Narrowed to their evidence, two candidates may end up the same rule.
        same = orjson.dumps([pattern.rule_type, pattern.condition, pattern.action])
        if same in seen:
            continue
        if pattern.rule_type == "tag_mapping":
            source = pattern.action["from"]
            if source in mapped:
                continue
            if pattern.qualifies:
                mapped[source] = pattern.action["to"]
        elif pattern.rule_type in ("tag_removal", "tag_addition"):
            tag = _tag_of(pattern)
            general = plain.get((pattern.rule_type, tag))
            if (
                general is not None
                and general is not pattern
                and _clauses(general) <= _clauses(pattern)
                and (general.qualifies or general.confidence >= pattern.confidence)
            ):
                continue  # the change everywhere it was seen covers this context
            if pattern.rule_type == "tag_addition":
                if any(mapped.get(c.get("has_tag", "")) == tag for c in pattern.condition["all"]):
                    continue
                per_tag[tag] += 1
                if per_tag[tag] > MAX_CONTEXTS_PER_TAG:
                    continue
        seen.add(same)
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


def _clauses(pattern: Pattern) -> set[bytes]:
    return {
        orjson.dumps(clause, option=orjson.OPT_SORT_KEYS) for clause in pattern.condition["all"]
    }
