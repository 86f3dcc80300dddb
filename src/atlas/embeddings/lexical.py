"""Lexical search: an in-process BM25 index over title, tags, description and transcript.

The index also keeps each item's confirmed tags and genres and how rare each is
in the library, which hybrid fusion reads (:mod:`atlas.embeddings.fusion`).

Why in-process rather than SQLite FTS5 or PostgreSQL full-text search: one
implementation ranks the same on both databases, needs no schema of its own,
and a library of 100,000 items fits in a sparse matrix of a few tens of MB.
The index is built from SQL on first use and cached per process and database;
a cheap signature query (row counts and last change times of media, tags and
transcripts) tells when it must be rebuilt, so a changed library is never
searched through a stale index.

Fields are weighted BM25F-style by repeating their terms: the title and
confirmed tags count three times, automatic tags and the description once,
the transcript once (it is long, and BM25's length normalisation keeps it in
check). Terms are lower-cased word tokens without English stop words, with a
light plural stemmer (``robots`` -> ``robot``).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from atlas.db import database_errors
from atlas.db.tables import media, media_tags, transcripts
from atlas.embeddings.fusion import tag_rarity
from atlas.media.tags import normalise_tag

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["LexicalHit", "LexicalIndex", "clear_lexical_cache", "get_lexical_index", "tokenize"]

K1 = 1.2
B = 0.75
_TITLE_WEIGHT = 3
_CONFIRMED_TAG_WEIGHT = 3
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
        import numpy as np
        from scipy import sparse

        self.media_ids = np.asarray(media_ids, dtype=np.int64)
        self.media_types = np.asarray(media_types, dtype=object)
        self.genres = list(genres)
        #: Confirmed tags and genres of each item (normalised), and their rarity.
        self.tags = dict(zip(media_ids, tags or [frozenset()] * len(media_ids), strict=True))
        tag_counts: dict[str, int] = {}
        for item_tags in self.tags.values():
            for tag in item_tags:
                tag_counts[tag] = tag_counts.get(tag, 0) + 1
        self.tag_rarity = tag_rarity(tag_counts, len(media_ids))
        self.vocabulary: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        counts: list[float] = []
        lengths = np.zeros(len(documents), dtype=np.float64)
        for row, tokens in enumerate(documents):
            lengths[row] = len(tokens)
            tf: dict[int, int] = {}
            for token in tokens:
                col = self.vocabulary.setdefault(token, len(self.vocabulary))
                tf[col] = tf.get(col, 0) + 1
            rows.extend([row] * len(tf))
            cols.extend(tf.keys())
            counts.extend(tf.values())
        shape = (len(documents), max(1, len(self.vocabulary)))
        tf_matrix = sparse.csr_matrix(
            (np.asarray(counts, dtype=np.float64), (rows, cols)), shape=shape
        )
        n_docs = max(1, len(documents))
        doc_freq = np.bincount(tf_matrix.indices, minlength=shape[1]).astype(np.float64)
        self.idf = np.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))
        average = float(lengths.mean()) if len(documents) else 1.0
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

    def term_idfs(self, query: str) -> list[float]:
        """The IDF of each distinct word of ``query`` the library holds (hybrid fusion's rarity)."""
        known = dict.fromkeys(t for t in tokenize(query) if t in self.vocabulary)
        return [float(self.idf[self.vocabulary[t]]) for t in known]

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

        columns = sorted({self.vocabulary[t] for t in tokenize(query) if t in self.vocabulary})
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


# --- building from SQL, cached ------------------------------------------------------

_CACHE: dict[str, tuple[tuple[Any, ...], LexicalIndex]] = {}
_CACHE_LOCK = threading.Lock()


def _signature(engine: Engine) -> tuple[Any, ...]:
    with database_errors(engine), engine.connect() as connection:
        media_sig = connection.execute(select(func.count(), func.max(media.c.updated_at))).one()
        tags_sig = connection.execute(
            select(func.count(), func.max(media_tags.c.updated_at), func.max(media_tags.c.id))
        ).one()
        transcripts_sig = connection.execute(
            select(
                func.count(),
                func.max(transcripts.c.id),
                func.max(transcripts.c.created_at),
                func.sum(func.length(transcripts.c.text)),
            )
        ).one()
    return (*media_sig, *tags_sig, *transcripts_sig)


def get_lexical_index(engine: Engine) -> LexicalIndex:
    """The BM25 index of the library in ``engine``; rebuilt when the library changed."""
    key = str(engine.url)
    signature = _signature(engine)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
    index = build_lexical_index(engine)
    with _CACHE_LOCK:
        _CACHE[key] = (signature, index)
    return index


def clear_lexical_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def build_lexical_index(engine: Engine) -> LexicalIndex:
    """Read title, tags, description and transcript of every item and index them."""
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(
                media.c.id, media.c.media_type, media.c.title, media.c.genre, media.c.description
            ).order_by(media.c.id)
        ).all()
        tag_rows = connection.execute(
            select(media_tags.c.media_id, media_tags.c.tag, media_tags.c.kind, media_tags.c.source)
        ).all()
        transcript_rows = connection.execute(
            select(transcripts.c.media_id, transcripts.c.text)
        ).all()
    tags: dict[int, list[Any]] = {}
    for tag_row in tag_rows:
        tags.setdefault(tag_row.media_id, []).append(tag_row)
    texts = {row.media_id: row.text for row in transcript_rows}

    ids, documents, types, genres, confirmed = [], [], [], [], []
    for row in rows:
        tokens: list[str] = []
        tokens += tokenize(row.title or "") * _TITLE_WEIGHT
        item_genres = {normalise_tag(row.genre)} if row.genre else set()
        item_tags = set(item_genres)
        for tag in tags.get(row.id, ()):
            weight = 1 if tag.source == "auto" else _CONFIRMED_TAG_WEIGHT
            tokens += tokenize(tag.tag) * weight
            if tag.source != "auto":
                item_tags.add(normalise_tag(tag.tag))
            if tag.kind == "genre" and tag.source != "auto":
                item_genres.add(normalise_tag(tag.tag))
        tokens += tokenize(row.description or "")
        tokens += tokenize(texts.get(row.id) or "")
        ids.append(row.id)
        documents.append(tokens)
        types.append(row.media_type)
        genres.append(frozenset(item_genres))
        confirmed.append(frozenset(item_tags - {""}))
    return LexicalIndex(ids, documents, types, genres, confirmed)
