"""Checking a candidate rule on the user's own reviewed items before it may act.

Two checks, both over every reviewed item (corrected or not):

* **scope** — a rule acts only where its evidence is. The contexts that held on
  every item where the user made the correction (the media type, genre and folder,
  and the tags Atlas showed) join the rule's condition, and the rule is measured
  again over the reviewed items where that whole condition held: the items where
  the user saw the same situation and did not make the correction count against
  it. 25 audio files whose automatic 'Music' the user corrected to 'Test Tone'
  make "'Music' is replaced by 'Test Tone' for audio items", never "'Test Tone'
  is added to every item", which would act on video clips nobody reviewed.
* **contradiction** — where the user added a tag on at least ``min_frequency``
  items of the kind a would-be rule acts on and removed it (Atlas had shown it)
  on at least ``min_frequency`` of them too, the rarer way at least
  :data:`CONTRADICTION_SHARE` as often as the other, neither an addition nor a
  removal of it is made, and the mining result says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atlas.feedback.pattern_model import ANY, SEP, Pattern, clause_of
from atlas.feedback.sparse import Incidence, ReviewedRows

__all__ = ["Evidence"]

#: Corrections both ways are contradictory when the rarer way happened at least this
#: share as often as the other (and on ``min_frequency`` items): a tag removed 40
#: times and added 3 is a tag the user mostly removes (the confidence counts the 3
#: against a removal), not a contradiction. A definition, not tuned on any data.
CONTRADICTION_SHARE = 0.25
#: Clauses that can narrow a rule to its evidence, in the order they are written.
_SCOPE_KINDS = ("type", "genre", "folder", "tag")


class Evidence:
    """The reviewed items as column lookups, to find where each candidate held and hit."""

    def __init__(self, rows: ReviewedRows) -> None:
        import numpy as np

        self.count = len(rows.observations)
        self.weights = rows.weights
        self.media_ids = rows.media_ids
        self._rows = rows
        self._scope_of: Incidence | None = None
        self._none = np.zeros(self.count, dtype=bool)
        self.contradictions: list[str] = []
        self._said: set[str] = set()

    def mask(self, which: str, name: str) -> Any:
        """Rows (reviewed items) where ``name`` is in the ``which`` incidence.

        Built from the column's row indices (a CSC lookup), never from a scan of
        every item; ``feature`` names (``kind<SEP>value``) are looked up in the
        incidence of their kind.
        """
        import numpy as np

        if which == "feature":
            if name == ANY:
                return np.ones(self.count, dtype=bool)
            kind, _, value = name.partition(SEP)
            if kind == "tag":
                which, name = "shown", value
            elif kind == "word":
                which, name = "words", value
            else:
                which = "narrow"
        rows = self._rows
        incidence = {
            "predicted": rows.predicted,
            "shown": rows.shown,
            "removed": rows.removed,
            "added": rows.added,
            "narrow": rows.narrow,
            "words": rows.words,
        }[which]
        found = np.zeros(self.count, dtype=bool)
        found[incidence.rows_of(name)] = True
        return found

    @property
    def _scope(self) -> Incidence:
        """The contexts a rule can be narrowed to: narrow features, then tags shown."""
        if self._scope_of is None:
            shown = self._rows.shown
            tags = Incidence(shown.matrix, ["tag" + SEP + norm for norm in shown.names])
            self._scope_of = Incidence.joined([self._rows.narrow, tags])
        return self._scope_of

    def held_and_hit(self, key: tuple[str, str, str]) -> tuple[Any, Any]:
        """Where the candidate's condition held, and where the user did what it would do."""
        family, first, second = key
        if family == "map":
            held = self.mask("predicted", first) & ~self.mask("shown", second)
            return held, held & self.mask("removed", first) & self.mask("added", second)
        if family == "rem":
            where = self.mask("feature", second)
            held = (self.mask("predicted", first) | self.mask("added", first)) & where
            return held, held & self.mask("removed", first)
        held = self.mask("feature", second) & ~self.mask("shown", first)
        return held, held & self.mask("added", first)

    def check(
        self,
        key: tuple[str, str, str],
        pattern: Pattern,
        confidence: Callable[[float, float], float],
        min_frequency: int,
    ) -> None:
        """Narrow ``pattern`` to its evidence and measure it again there; mark contradictions.

        ``confidence(hit_w, held_w)``: the family's confidence of a measure.
        """
        family, first, second = key
        held, hit = self.held_and_hit(key)
        hits = int(hit.sum())
        if not hits:
            return
        scope = self._scope.matrix[hit.nonzero()[0]]
        import numpy as np

        columns, times = np.unique(scope.indices, return_counts=True)
        everywhere = columns[times == hits]
        own = {"tag" + SEP + first, "tag" + SEP + second, second}
        shared = [self._scope.names[i] for i in everywhere.tolist()]
        # A mapping or removal already names the tag it acts on: the situation is
        # its kind of item. An addition names none: the tags Atlas showed are part
        # of the situation too.
        shared = [
            feature
            for feature in shared
            if feature not in own and (family == "add" or not feature.startswith("tag" + SEP))
        ]
        shared.sort(key=lambda f: (_SCOPE_KINDS.index(f.partition(SEP)[0]), f))
        if shared:
            for feature in shared:
                kind, _, value = feature.partition(SEP)
                held &= (
                    self.mask("shown", value) if kind == "tag" else self.mask("feature", feature)
                )
            clauses = list(pattern.condition["all"])
            at = len(clauses) - 1 if family == "add" else len(clauses)  # lacks_tag stays last
            clauses[at:at] = [clause_of(feature) for feature in shared]
            pattern.condition = {"all": clauses}
            pattern.observed = int(held.sum())
            pattern.confidence = confidence(
                float(self.weights[hit].sum()), float(self.weights[held].sum())
            )
        if family in ("add", "rem"):
            self._contradiction(family, first, held, hits, pattern, min_frequency)

    def _contradiction(
        self, family: str, tag: str, held: Any, hits: int, pattern: Pattern, min_frequency: int
    ) -> None:
        # Of the same kind of items: where the rule's (narrowed) context held.
        if family == "add":
            where = self._context_rows(pattern)
            against = int((where & self.mask("removed", tag)).sum())
            added, removed = hits, against
        else:
            against = int((held & self.mask("added", tag)).sum())
            added, removed = against, hits
        if min(against, hits) < max(min_frequency, CONTRADICTION_SHARE * max(against, hits)):
            return
        pattern.contradicted = True
        if tag in self._said:
            return
        self._said.add(tag)
        name = pattern.action.get("display") or tag
        self.contradictions.append(
            f"'{name}' was added on {added} and removed on {removed} reviewed items of the "
            f"same kind ({_kind_words(pattern)}): contradictory corrections, no rule made "
            "either way"
        )

    def _context_rows(self, pattern: Pattern) -> Any:
        """Rows where the addition's context clauses hold, whether or not its tag was shown."""
        import numpy as np

        rows = np.ones(self.count, dtype=bool)
        for clause in pattern.condition["all"]:
            if "lacks_tag" in clause:
                continue
            (name, value), *_ = clause.items()
            feature = (
                {
                    "media_type": "type",
                    "genre": "genre",
                    "in_folder": "folder",
                    "has_tag": "tag",
                    "word": "word",
                }[name]
                + SEP
                + str(value)
            )
            by = ("shown", value) if name == "has_tag" else ("feature", feature)
            rows &= self.mask(*by)
        return rows


def _kind_words(pattern: Pattern) -> str:
    parts = []
    for clause in pattern.condition["all"]:
        if "lacks_tag" in clause or ("has_tag" in clause and clause.get("sources")):
            continue
        (name, value), *_ = clause.items()
        parts.append(
            {
                "media_type": f"{value} items",
                "genre": f"genre '{value}'",
                "in_folder": f"in {value}",
                "has_tag": f"tagged '{value}'",
                "word": f"mentioning '{value}'",
            }[name]
        )
    return ", ".join(parts) or "every reviewed item"
