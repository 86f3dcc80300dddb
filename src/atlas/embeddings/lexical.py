"""Lexical search: an in-process BM25 index over title, tags, description and transcript.

The index also keeps each item's confirmed tags and genres and how rare each is
in the library, which hybrid fusion reads (:mod:`atlas.embeddings.fusion`).

Why in-process rather than SQLite FTS5 or PostgreSQL full-text search: one
implementation ranks the same on both databases, and a library of 100,000 items
fits in a sparse matrix of a few tens of MB. An index is an immutable snapshot;
:meth:`LexicalIndex.replaced` makes the next one from it and the changed items
only (their term counts replace their rows; the BM25 weights, which depend on
every document's length and every term's document frequency, are recomputed
from the term counts in a few vectorised steps). Building from SQL, caching and
keeping it current live in :mod:`atlas.embeddings.lexical_sync`.

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
    import numpy as np
    import numpy.typing as npt

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
    """BM25 weights of every (item, term) as a sparse matrix; search is one column sum."""

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
        self._build(docs)

    @classmethod
    def of(cls, documents: Sequence[LexicalDocument]) -> LexicalIndex:
        """The index of ``documents`` (in media id order)."""
        index = cls.__new__(cls)
        index._build(sorted(documents, key=lambda d: d.media_id))
        return index

    def _build(self, docs: list[LexicalDocument]) -> None:
        import numpy as np

        self.vocabulary: dict[str, int] = {}
        self._tf = _term_counts(docs, self.vocabulary)
        self.media_ids = np.asarray([d.media_id for d in docs], dtype=np.int64)
        self.media_types = np.asarray([d.media_type for d in docs], dtype=object)
        self.genres = [d.genres for d in docs]
        #: Confirmed tags and genres of each item (normalised), and their rarity.
        self.tags = {d.media_id: d.tags for d in docs}
        self._tag_counts: dict[str, int] = {}
        for item_tags in self.tags.values():
            for tag in item_tags:
                self._tag_counts[tag] = self._tag_counts.get(tag, 0) + 1
        self.tag_rarity = tag_rarity(self._tag_counts, len(docs))
        self._weigh()

    def replaced(self, changed: Mapping[int, LexicalDocument | None]) -> LexicalIndex:
        """A new index: this one with ``changed`` items replaced (``None``: removed).

        Only the changed items are tokenised; the rest keep their term counts,
        spliced into the new matrix in media id order. Scores equal those of an
        index built from scratch over the same items. This index is left as it
        was (a search running on it in another thread is not disturbed).
        """
        import numpy as np
        from scipy import sparse

        if not changed:
            return self
        ids = self.media_ids
        wanted = np.fromiter(changed, dtype=np.int64, count=len(changed))
        at = np.searchsorted(ids, wanted)
        present = at[(at < len(ids)) & (ids[np.minimum(at, max(len(ids) - 1, 0))] == wanted)]
        keep = np.ones(len(ids), dtype=bool)
        keep[present] = False
        kept_rows = np.flatnonzero(keep)
        docs = sorted((d for d in changed.values() if d is not None), key=lambda d: d.media_id)

        index = type(self).__new__(type(self))
        known = all(t in self.vocabulary for d in docs for t in d.tokens)
        index.vocabulary = self.vocabulary if known else dict(self.vocabulary)
        new_tf = _term_counts(docs, index.vocabulary)
        old = self._tf
        starts = np.concatenate([old.indptr[:-1][kept_rows], new_tf.indptr[:-1] + old.nnz])
        lengths = np.concatenate([np.diff(old.indptr)[kept_rows], np.diff(new_tf.indptr)])
        all_ids = np.concatenate([ids[kept_rows], [d.media_id for d in docs]]).astype(np.int64)
        order = np.argsort(all_ids, kind="stable")
        lengths = lengths[order]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(old.indptr.dtype)
        gather = np.repeat(starts[order] - indptr[:-1], lengths) + np.arange(indptr[-1])
        index._tf = sparse.csr_matrix(
            (
                np.concatenate([old.data, new_tf.data])[gather],
                np.concatenate([old.indices, new_tf.indices])[gather],
                indptr,
            ),
            shape=(len(all_ids), max(1, len(index.vocabulary))),
        )
        index.media_ids = all_ids[order]
        types = np.concatenate(
            [self.media_types[kept_rows], np.asarray([d.media_type for d in docs], dtype=object)]
        )
        index.media_types = types[order]
        genres = [self.genres[i] for i in kept_rows] + [d.genres for d in docs]
        index.genres = [genres[i] for i in order]

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
        if len(all_ids) == len(ids):
            # Same number of items: only the touched tags' rarity changes.
            rarity = dict(self.tag_rarity)
            for tag in touched:
                rarity.pop(tag, None)
            rarity.update(tag_rarity({t: counts[t] for t in touched if t in counts}, len(ids)))
            index.tag_rarity = rarity
        else:
            index.tag_rarity = tag_rarity(counts, len(all_ids))
        index._weigh()
        return index

    def _weigh(self) -> None:
        import numpy as np
        from scipy import sparse

        tf_matrix = self._tf
        shape = tf_matrix.shape
        lengths = np.asarray(tf_matrix.sum(axis=1)).ravel()
        n_docs = max(1, shape[0])
        self.doc_freq = np.bincount(tf_matrix.indices, minlength=shape[1]).astype(np.float64)
        self.idf = np.log(1.0 + (n_docs - self.doc_freq + 0.5) / (self.doc_freq + 0.5))
        average = float(lengths.mean()) if shape[0] else 1.0
        norm = K1 * (1.0 - B + B * lengths / max(average, 1e-9))
        # Per stored entry: idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg)).
        entry_rows = np.repeat(np.arange(shape[0]), np.diff(tf_matrix.indptr))
        data = tf_matrix.data
        data = self.idf[tf_matrix.indices] * data * (K1 + 1.0) / (data + norm[entry_rows])
        weights = sparse.csr_matrix((data, tf_matrix.indices, tf_matrix.indptr), shape=shape)
        # Column access is what a query needs.
        self.weights = weights.tocsc()

    def __len__(self) -> int:
        return len(self.media_ids)

    def _columns(self, query: str) -> list[int]:
        """Distinct known terms of ``query`` (terms no item holds any more are unknown)."""
        known = (self.vocabulary.get(t) for t in tokenize(query))
        return list(dict.fromkeys(c for c in known if c is not None and self.doc_freq[c] > 0))

    def term_idfs(self, query: str) -> list[float]:
        """The IDF of each distinct word of ``query`` the library holds (hybrid fusion's rarity)."""
        return [float(self.idf[c]) for c in self._columns(query)]

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
        if not columns or n < 1 or not len(self.media_ids):
            return []
        scores: npt.NDArray[np.float64] = np.asarray(self.weights[:, columns].sum(axis=1)).ravel()
        mask = scores > 0
        if media_type is not None:
            mask &= self.media_types == media_type
        if genre is not None:
            wanted = normalise_tag(genre)
            mask &= np.fromiter(
                (wanted in g for g in self.genres), dtype=bool, count=len(self.genres)
            )
        candidates = np.flatnonzero(mask)
        if not len(candidates):
            return []
        if len(candidates) > n:
            part = np.argpartition(-scores[candidates], n - 1)[:n]
            candidates = candidates[part]
        order = sorted(candidates, key=lambda i: (-scores[i], self.media_ids[i]))
        return [LexicalHit(int(self.media_ids[i]), float(scores[i])) for i in order]


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
