"""Lexical search: an in-process BM25 index over title, tags, description and transcript.

The index also keeps each item's confirmed tags and genres and how rare each is
in the library, which hybrid fusion reads (:mod:`atlas.embeddings.fusion`).

Why in-process rather than SQLite FTS5 or PostgreSQL full-text search: one
implementation ranks the same on both databases, and a library of 100,000 items
fits in a sparse matrix of a few tens of MB. An index is an immutable snapshot
of term counts, scored when a query comes; :meth:`LexicalIndex.replaced` makes
the next one from it and the changed items only (they join a small delta,
their old rows are hidden, and the document lengths and frequencies BM25
depends on are running totals), so a refresh costs the changed items, not the
library. Building from SQL, caching and keeping it current live in
:mod:`atlas.embeddings.lexical_sync`.

Fields are weighted BM25F-style by repeating their terms: the title and
confirmed tags count three times, automatic tags and the description once,
the transcript once (it is long, and BM25's length normalisation keeps it in
check). Terms are lower-cased word tokens without English stop words, with a
light plural stemmer (``robots`` -> ``robot``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atlas.embeddings.fusion import tag_rarity
from atlas.media.tags import normalise_tag

if TYPE_CHECKING:
    pass

__all__ = ["LexicalDocument", "LexicalHit", "LexicalIndex", "tokenize"]

K1 = 1.2
B = 0.75
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()  # noqa: SIM905
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stop words, plurals folded (``movies`` -> ``movie``)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    tokens = []
    for match in _WORD.finditer(folded):
        word = match.group().replace("’", "'")
        if word.endswith("'s"):
            word = word[:-2]
        if word in STOP_WORDS or not word:
            continue
        tokens.append(_stem(word))
    return tokens


def _stem(word: str) -> str:
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    return word[:-1]


@dataclass(frozen=True)
class LexicalHit:
    media_id: int
    score: float


@dataclass(frozen=True)
class LexicalDocument:
    """One item as the index holds it: its weighted tokens and its facets."""

    media_id: int
    tokens: list[str]
    media_type: str
    genres: frozenset[str]
    #: Confirmed tags and genres (normalised).
    tags: frozenset[str]


class LexicalIndex:
    """An immutable snapshot of the BM25 index: term counts, scored when a query comes.

    A base (every item when it was last merged), the base rows hidden since, and a
    delta of the items changed since. BM25 depends on every document's length and
    every term's document frequency; both are kept as running totals, so a change
    costs only the changed items, and a query weighs the few columns of its words.
    """

    def __init__(
        self,
        media_ids: Sequence[int],
        documents: Sequence[list[str]],
        media_types: Sequence[str],
        genres: Sequence[frozenset[str]],
        tags: Sequence[frozenset[str]] | None = None,
    ) -> None:
        item_tags = tags if tags is not None else [frozenset()] * len(media_ids)
        docs = [
            LexicalDocument(*parts)
            for parts in zip(media_ids, documents, media_types, genres, item_tags, strict=True)
        ]
        self._build(sorted(docs, key=lambda d: d.media_id))

    @classmethod
    def of(cls, documents: Sequence[LexicalDocument]) -> LexicalIndex:
        """The index of ``documents``."""
        index = cls.__new__(cls)
        index._build(sorted(documents, key=lambda d: d.media_id))
        return index

    def _build(self, docs: list[LexicalDocument]) -> None:
        import numpy as np

        self.vocabulary: dict[str, int] = {}
        self._base = _Counts.of(docs, self.vocabulary)
        self._hidden = np.zeros(len(self._base), dtype=bool)
        self._delta = _Counts.of([], self.vocabulary)
        self._doc_freq = self._base.doc_freq.copy()
        self._total = float(self._base.lengths.sum())
        self._count = len(docs)
        #: Confirmed tags and genres of each item (normalised), and their rarity.
        self.tags = {d.media_id: d.tags for d in docs}
        self._tag_counts: dict[str, int] = {}
        for item_tags in self.tags.values():
            for tag in item_tags:
                self._tag_counts[tag] = self._tag_counts.get(tag, 0) + 1
        self.tag_rarity = tag_rarity(self._tag_counts, len(docs))

    def replaced(self, changed: Mapping[int, LexicalDocument | None]) -> LexicalIndex:
        """A new index: this one with ``changed`` items replaced (``None``: removed).

        Only the changed items are tokenised and counted; they join the delta, their
        old rows are hidden and the totals adjusted. When the delta outgrows
        1/16 of the base, both are merged into a new base. Scores equal those of
        an index built from scratch over the same items. This index is left as it
        was (a search running on it in another thread is not disturbed).
        """
        import numpy as np

        if not changed:
            return self
        docs = sorted((d for d in changed.values() if d is not None), key=lambda d: d.media_id)
        known = all(t in self.vocabulary for d in docs for t in d.tokens)
        vocabulary = self.vocabulary if known else dict(self.vocabulary)
        fresh = _Counts.of(docs, vocabulary)

        doc_freq = np.zeros(len(vocabulary), dtype=np.float64)
        doc_freq[: len(self._doc_freq)] = self._doc_freq
        total, count = self._total, self._count
        hidden = self._hidden.copy()
        kept_delta = np.ones(len(self._delta), dtype=bool)
        for media_id in changed:
            row = self._base.row.get(media_id)
            if row is not None and not hidden[row]:
                hidden[row] = True
                doc_freq[self._base.columns_of(row)] -= 1
                total -= float(self._base.lengths[row])
                count -= 1
            row = self._delta.row.get(media_id)
            if row is not None:
                kept_delta[row] = False
                doc_freq[self._delta.columns_of(row)] -= 1
                total -= float(self._delta.lengths[row])
                count -= 1
        doc_freq[: len(fresh.doc_freq)] += fresh.doc_freq
        total += float(fresh.lengths.sum())
        count += len(fresh)

        index = type(self).__new__(type(self))
        index.vocabulary = vocabulary
        index._doc_freq, index._total, index._count = doc_freq, total, count
        index._base, index._hidden = self._base, hidden
        index._delta = self._delta.merged(kept_delta, fresh, len(vocabulary))
        if len(index._delta) > max(_MIN_DELTA, len(self._base) // 16):
            index._base = self._base.merged(~hidden, index._delta, len(vocabulary))
            index._hidden = np.zeros(len(index._base), dtype=bool)
            index._delta = _Counts.of([], vocabulary)
        self._replace_tags(index, changed, docs)
        return index

    def _replace_tags(
        self,
        index: LexicalIndex,
        changed: Mapping[int, LexicalDocument | None],
        docs: list[LexicalDocument],
    ) -> None:
        index.tags = dict(self.tags)
        counts = dict(self._tag_counts)
        touched: set[str] = set()
        for media_id in changed:
            for tag in index.tags.pop(media_id, frozenset()):
                counts[tag] -= 1
                touched.add(tag)
        for doc in docs:
            index.tags[doc.media_id] = doc.tags
            for tag in doc.tags:
                counts[tag] = counts.get(tag, 0) + 1
                touched.add(tag)
        for tag in touched:
            if counts.get(tag) == 0:
                del counts[tag]
        index._tag_counts = counts
        if index._count == self._count:
            # Same number of items: only the touched tags' rarity changes.
            rarity = dict(self.tag_rarity)
            for tag in touched:
                rarity.pop(tag, None)
            rarity.update(tag_rarity({t: counts[t] for t in touched if t in counts}, index._count))
            index.tag_rarity = rarity
        else:
            index.tag_rarity = tag_rarity(counts, index._count)

    def __len__(self) -> int:
        return self._count

    @property
    def media_ids(self) -> Any:
        """The ids of the indexed items, in order."""
        import numpy as np

        return np.sort(np.concatenate([self._base.ids[~self._hidden], self._delta.ids]))

    def _columns(self, query: str) -> list[int]:
        """Distinct known terms of ``query`` (terms no item holds any more are unknown)."""
        frequency = self._doc_freq
        known = (self.vocabulary.get(t) for t in tokenize(query))
        return list(
            dict.fromkeys(
                c for c in known if c is not None and c < len(frequency) and frequency[c] > 0
            )
        )

    def _idf(self, columns: list[int]) -> Any:
        import numpy as np

        frequency = self._doc_freq[columns]
        return np.log(1.0 + (max(1, self._count) - frequency + 0.5) / (frequency + 0.5))

    def term_idfs(self, query: str) -> list[float]:
        """The IDF of each distinct word of ``query`` the library holds (hybrid fusion's rarity)."""
        return [float(idf) for idf in self._idf(self._columns(query))]

    def search(
        self,
        query: str,
        n: int,
        *,
        media_type: str | None = None,
        genre: str | None = None,
    ) -> list[LexicalHit]:
        """The ``n`` best BM25 matches for ``query`` (items matching no term are left out)."""
        import numpy as np

        columns = sorted(self._columns(query))
        if not columns or n < 1 or not self._count:
            return []
        idf = self._idf(columns)
        average = max(self._total / self._count, 1e-9)
        wanted = normalise_tag(genre) if genre is not None else None
        hits: list[tuple[float, int]] = []
        for part, hidden in ((self._base, self._hidden), (self._delta, None)):
            if not len(part):
                continue
            scores = part.scores(columns, idf, average)
            mask = scores > 0
            if hidden is not None:
                mask &= ~hidden
            if media_type is not None:
                mask &= part.types == media_type
            if wanted is not None:
                mask &= np.fromiter(
                    (wanted in g for g in part.genres), dtype=bool, count=len(part.genres)
                )
            candidates = np.flatnonzero(mask)
            if len(candidates) > n:
                # The n-th best score; every item that ties with it stays (ties go by id).
                nth = -np.partition(-scores[candidates], n - 1)[n - 1]
                candidates = candidates[scores[candidates] >= nth]
            hits += [(float(scores[i]), int(part.ids[i])) for i in candidates]
        hits.sort(key=lambda hit: (-hit[0], hit[1]))
        return [LexicalHit(media_id, score) for score, media_id in hits[:n]]


#: The smallest delta merged into the base (see ``LexicalIndex.replaced``).
_MIN_DELTA = 256


class _Counts:
    """Term counts of documents in media id order: by row (to hide and merge them) and
    by column (to score a query's terms), with each one's length, type and genres."""

    def __init__(self, ids: Any, counts: Any, types: Any, genres: list[frozenset[str]]) -> None:
        import numpy as np

        self.ids = ids
        self.by_row = counts
        self.by_column = counts.tocsc()
        self.lengths = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
        self.types = types
        self.genres = genres
        self.doc_freq = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
        self.row = {int(media_id): row for row, media_id in enumerate(ids)}

    @classmethod
    def of(cls, docs: Sequence[LexicalDocument], vocabulary: dict[str, int]) -> _Counts:
        """The counts of ``docs`` (in media id order), growing ``vocabulary``."""
        import numpy as np

        return cls(
            np.asarray([d.media_id for d in docs], dtype=np.int64),
            _term_counts(docs, vocabulary),
            np.asarray([d.media_type for d in docs], dtype=object),
            [d.genres for d in docs],
        )

    def __len__(self) -> int:
        return len(self.ids)

    def columns_of(self, row: int) -> Any:
        """The terms one document holds."""
        counts = self.by_row
        return counts.indices[counts.indptr[row] : counts.indptr[row + 1]]

    def scores(self, columns: list[int], idf: Any, average: float) -> Any:
        """The BM25 score of every row for the terms ``columns`` with these IDFs."""
        import numpy as np

        scores = np.zeros(len(self.ids), dtype=np.float64)
        counts = self.by_column
        for column, weight in zip(columns, idf, strict=True):
            if column >= counts.shape[1]:
                continue
            start, end = counts.indptr[column], counts.indptr[column + 1]
            rows, tf = counts.indices[start:end], counts.data[start:end]
            norm = K1 * (1.0 - B + B * self.lengths[rows] / average)
            scores[rows] += weight * tf * (K1 + 1.0) / (tf + norm)
        return scores

    def merged(self, keep: Any, other: _Counts, width: int) -> _Counts:
        """The rows ``keep`` marks and every row of ``other``, in media id order; the
        rows are spliced, not counted again."""
        import numpy as np
        from scipy import sparse

        kept_rows = np.flatnonzero(keep)
        old, new = self.by_row, other.by_row
        starts = np.concatenate([old.indptr[:-1][kept_rows], new.indptr[:-1] + old.nnz])
        lengths = np.concatenate([np.diff(old.indptr)[kept_rows], np.diff(new.indptr)])
        ids = np.concatenate([self.ids[kept_rows], other.ids]).astype(np.int64)
        order = np.argsort(ids, kind="stable")
        lengths = lengths[order]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = np.repeat(starts[order] - indptr[:-1], lengths) + np.arange(indptr[-1])
        counts = sparse.csr_matrix(
            (
                np.concatenate([old.data, new.data])[gather],
                np.concatenate([old.indices, new.indices])[gather],
                indptr,
            ),
            shape=(len(ids), max(1, width)),
        )
        types = np.concatenate([self.types[kept_rows], other.types])[order]
        genres = [self.genres[i] for i in kept_rows] + other.genres
        return _Counts(ids[order], counts, types, [genres[i] for i in order])


def _term_counts(docs: Sequence[LexicalDocument], vocabulary: dict[str, int]) -> Any:
    """Term counts of ``docs`` as a CSR matrix (rows in order), growing ``vocabulary``."""
    import numpy as np
    from scipy import sparse

    indptr = [0]
    cols: list[int] = []
    counts: list[int] = []
    for doc in docs:
        tf: dict[int, int] = {}
        for token in doc.tokens:
            col = vocabulary.setdefault(token, len(vocabulary))
            tf[col] = tf.get(col, 0) + 1
        for col in sorted(tf):
            cols.append(col)
            counts.append(tf[col])
        indptr.append(len(cols))
    return sparse.csr_matrix(
        (
            np.asarray(counts, dtype=np.float64),
            np.asarray(cols, dtype=np.int32),
            np.asarray(indptr, dtype=np.int32),
        ),
        shape=(len(docs), max(1, len(vocabulary))),
    )
