"""Sparse counting over the reviewed items: 0/1 matrices whose column sums count.

The reviewed items become rows of sparse 0/1 matrices (tags shown, predicted,
removed and added; contexts; words): column sums count, weighted sums weigh, and
products count pairs. Additions pair every frequent tag with every frequent
context, far too many pairs to measure item by item: :class:`Additions` measures
them as matrix products too.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Sequence
from itertools import chain, repeat
from typing import Any, NamedTuple

from atlas.feedback.context import MediaContext
from atlas.feedback.observations import TagObs
from atlas.feedback.pattern_model import ANY, EXAMPLES, SEP, Measure

__all__ = ["Additions", "Incidence", "Reviewed", "ReviewedRows", "narrow_features"]

#: Whitespace other than a plain space.
_OTHER_SPACE = re.compile(r"[^\S ]")
_ASCII_SPACES = [chr(code) for code in range(128) if chr(code).isspace() and chr(code) != " "]


class Reviewed(NamedTuple):
    """One reviewed item as tag mining sees it."""

    media_id: int
    obs: TagObs
    #: Tags Atlas predicted (source ``auto``).
    predicted: set[str]
    #: Of those, the ones the user removed.
    removed: set[str]
    #: Tags the user added that Atlas had not shown.
    added: set[str]
    #: The contexts a removal may be limited to.
    narrow: list[str]
    context: MediaContext | None


class Additions:
    """Count, choose and measure the additions "tag b is added where feature f holds".

    Every frequent tag is paired with every frequent feature, too many pairs to
    count one by one, so the reviewed items become sparse 0/1 matrices (rows in
    ``observations`` order): ``added`` (the user added b), ``shown`` (Atlas
    showed b, so adding it was not needed) and ``held`` (f holds). ``added.T @
    held`` counts each pair's corrections; ``may_qualify(b, items with f, hits)``
    keeps the candidates; a candidate is measured over the items where f holds
    and b was not shown (``held`` less ``shown.T @ held``). Its examples (the
    first :data:`EXAMPLES` items where b was added and f holds) are looked up
    only for the patterns kept (:meth:`examples`).
    """

    def __init__(
        self, media_ids: Any, weights: Any, added: Incidence, shown: Incidence, held: Incidence
    ) -> None:
        self.media_ids, self.weights = media_ids, weights
        self.tags, self.features = added.names, held.names
        self.tag_index = {b: i for i, b in enumerate(self.tags)}
        self.feature_index = {f: i for i, f in enumerate(self.features)}
        self.added, self.shown, self.held = added.matrix, shown.matrix, held.matrix

    def measure(
        self, may_qualify: Callable[[Any, Any, Any], Any]
    ) -> dict[tuple[str, str, str], Measure]:
        import numpy as np
        from scipy import sparse

        added, shown, held = self.added, self.shown, self.held
        feature_items = np.asarray(held.sum(axis=0)).ravel()
        counts = (added.T @ held).tocoo()
        chosen = may_qualify(counts.row, feature_items[counts.col], counts.data)
        b, f = counts.row[chosen], counts.col[chosen]
        if not len(b):
            return {}
        # The other products only over the chosen tags and features (each pair's sum
        # runs over the same items in the same order as over every column).
        tags, tag_at = np.unique(b, return_inverse=True)
        features, feature_at = np.unique(f, return_inverse=True)
        added, shown, held = added[:, tags], shown[:, tags], held[:, features]
        weighted = sparse.diags(self.weights)
        hit_n = counts.data[chosen]
        hit_w = np.asarray(((weighted @ added).T @ held)[tag_at, feature_at]).ravel()
        held_n = feature_items[f] - np.asarray((shown.T @ held)[tag_at, feature_at]).ravel()
        held_w = (held.T @ self.weights)[feature_at] - np.asarray(
            ((weighted @ shown).T @ held)[tag_at, feature_at]
        ).ravel()
        measures = {}
        for i, (tag, feature) in enumerate(zip(b.tolist(), f.tolist(), strict=True)):
            found = measures[("add", self.tags[tag], self.features[feature])] = Measure()
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
        both = items[np.isin(items, holding, assume_unique=True)][:EXAMPLES]
        return self.media_ids[both].tolist()


class Incidence:
    """Rows of distinct names as a sparse 0/1 matrix (CSR, sorted indices) and its columns."""

    def __init__(self, matrix: Any, names: list[str], index: dict[str, int] | None = None) -> None:
        self.matrix, self.names = matrix, names
        if index is not None:
            self.__dict__["index"] = index

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Name -> column."""
        return {name: i for i, name in enumerate(self.names)}

    @functools.cached_property
    def by_column(self) -> Any:
        """The matrix by column (CSC, rows ascending): the rows holding a name, cheaply."""
        matrix = self.matrix.tocsc()
        matrix.sort_indices()
        return matrix

    def rows_of(self, name: str) -> Any:
        """The rows (ascending) holding ``name``."""
        import numpy as np

        column = self.index.get(name)
        if column is None:
            return np.zeros(0, dtype=np.int64)
        matrix = self.by_column
        return matrix.indices[matrix.indptr[column] : matrix.indptr[column + 1]]

    @classmethod
    def of(cls, rows: Sequence[Collection[str]]) -> Incidence:
        """Row i has ones in the columns of the names in ``rows[i]`` (a name repeated in a
        row counts once)."""
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
        matrix.sum_duplicates()  # sorts the indices, and merges a name repeated in a row
        matrix.data[:] = 1.0
        return cls(matrix, list(index), dict(index))

    @classmethod
    def of_words(cls, texts: Sequence[str]) -> Incidence:
        """Row i has ones in the columns of the whitespace-separated words of ``texts[i]``.

        The same as ``of([text.split() for text in texts])`` without a list per row:
        the texts are joined and split once (when they are separated by plain spaces
        only, as stored words are).
        """
        import numpy as np
        from scipy import sparse

        count = len(texts)
        joined = " ".join(texts)
        if not count or _other_space(joined):
            return cls.of([text.split() for text in texts])
        index: defaultdict[str, int] = defaultdict()
        index.default_factory = index.__len__
        index[""]  # column 0: the empty word of an empty text or of two spaces in a row
        words = joined.split(" ")
        # Text i is split into (its spaces + 1) words, empty ones included.
        per_text = np.fromiter(map(str.count, texts, repeat(" ", count)), np.int64, count) + 1
        columns = np.fromiter(map(index.__getitem__, words), np.int64, len(words))
        kept = columns != 0
        if not kept.all():
            rows = np.repeat(np.arange(count, dtype=np.int64), per_text)
            per_text = np.bincount(rows[kept], minlength=count)
            columns = columns[kept]
        indptr = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(per_text, out=indptr[1:])
        shape = (count, len(index) - 1)
        matrix = sparse.csr_matrix((np.ones(len(columns)), columns - 1, indptr), shape=shape)
        matrix.sum_duplicates()  # sorts the indices; a word repeated in a text counts once
        matrix.data[:] = 1.0
        names = list(index)[1:]
        return cls(matrix, names)

    def counts(self) -> Counter[str]:
        """Rows holding each name."""
        return Counter(dict(zip(self.names, self._column_counts().tolist(), strict=True)))

    def weighted(self, weights: Any) -> dict[str, float]:
        """The weight of the rows holding each name."""
        return dict(zip(self.names, (self.matrix.T @ weights).tolist(), strict=True))

    def columns(self, names: list[str]) -> Incidence:
        """Only these columns, in this order (a name in no row: a column of zeros)."""
        import numpy as np
        from scipy import sparse

        rows, width = self.matrix.shape
        index = {name: i for i, name in enumerate(self.names)}
        order = np.fromiter((index.get(name, width) for name in names), np.int64, len(names))
        padded = sparse.hstack([self.matrix, sparse.csr_matrix((rows, 1))], format="csr")
        return Incidence(_sorted(padded[:, order]), list(names))

    def frequent(self, least: float) -> Incidence:
        """Only the columns of names held by at least ``least`` rows."""
        import numpy as np

        keep = np.flatnonzero(self._column_counts() >= least)
        return Incidence(_sorted(self.matrix[:, keep]), [self.names[i] for i in keep.tolist()])

    def pairs(self, other: Incidence, least: int) -> dict[tuple[str, str], int]:
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
    def joined(parts: list[Incidence]) -> Incidence:
        """Side by side (the same rows)."""
        from scipy import sparse

        matrix = sparse.hstack([part.matrix for part in parts], format="csr")
        return Incidence(_sorted(matrix), [name for part in parts for name in part.names])

    def _column_counts(self) -> Any:
        import numpy as np

        return np.bincount(self.matrix.indices, minlength=self.matrix.shape[1])


def _other_space(text: str) -> bool:
    """Whether ``text`` has whitespace other than plain spaces."""
    if text.isascii():  # a quick search for each of the few ASCII ones
        return any(space in text for space in _ASCII_SPACES)
    return _OTHER_SPACE.search(text) is not None


def _sorted(matrix: Any) -> Any:
    matrix = matrix.tocsr()
    matrix.sort_indices()
    return matrix


class ReviewedRows:
    """The reviewed items (``observations`` order) as :class:`Incidence` matrices."""

    def __init__(self, observations: list[Reviewed], word_text: dict[int, str]) -> None:
        import numpy as np

        count = len(observations)
        self.observations = observations
        #: Each item's words, space-separated (see :func:`atlas.media.words.stored_words`).
        self.word_text = word_text
        self.media_ids = np.fromiter((o.media_id for o in observations), np.int64, count)
        self.weights = np.fromiter((o.obs.w for o in observations), np.float64, count)
        #: Tags Atlas showed (predicted: automatic ones), removed, and added.
        self.shown = Incidence.of([o.obs.pre.keys() for o in observations])
        self.predicted = Incidence.of([o.predicted for o in observations])
        self.removed = Incidence.of([o.removed for o in observations])
        self.added = Incidence.of([o.added for o in observations])
        #: The contexts a removal may be limited to.
        self.narrow = Incidence.of([o.narrow for o in observations])

    def features(self) -> Incidence:
        """See :attr:`all_features`."""
        return self.all_features

    @functools.cached_property
    def all_features(self) -> Incidence:
        """Every context an addition can be conditioned on: always, the narrow
        contexts, each tag shown (``tag<SEP>norm``) and each word."""
        import numpy as np
        from scipy import sparse

        observations = self.observations
        always = Incidence(sparse.csr_matrix(np.ones((len(observations), 1))), [ANY])
        narrow = self.narrow
        tags = Incidence(self.shown.matrix, ["tag" + SEP + norm for norm in self.shown.names])
        words = self.words
        words = Incidence(words.matrix, ["word" + SEP + word for word in words.names])
        return Incidence.joined([always, narrow, tags, words])

    @functools.cached_property
    def words(self) -> Incidence:
        """The words of each item's texts."""
        text = self.word_text
        return Incidence.of_words([text.get(o.media_id, "") for o in self.observations])


def narrow_features(context: MediaContext | None) -> list[str]:
    """The contexts a removal may be limited to (and an addition conditioned on)."""
    if context is None:
        return []
    features = ["type" + SEP + context.media_type]
    if context.genre_norm:
        features.append("genre" + SEP + context.genre_norm)
    if context.folder:
        features.append("folder" + SEP + context.folder)
    return features
