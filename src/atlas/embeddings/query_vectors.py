"""``QueryVectors``: the embeddings of recent search texts, so a repeated query skips the model.

Embedding a query is by far the dearest part of a vector or hybrid search (a
forward pass of the model; on a busy CPU, hundreds of milliseconds), and people
repeat queries: the same words from the search box, the same link followed
again. A long-lived process (``atlas serve``) keeps one bounded, least recently
used table of query vectors, owned by its ``Library``; a one-shot command gains
nothing from it and pays nothing for it.

A vector depends only on the model and the text, so an entry never goes stale:
the key holds the provider's model id, and the vectors come back read-only.
Requests that ask for a text already being embedded wait for that one pass
instead of each running the model (many clients searching the same new words
at once would otherwise all pay for it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from atlas.embeddings.providers import EmbeddingProvider

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

__all__ = ["QUERY_VECTORS_KEPT", "QueryVectors"]

#: Query vectors kept (384 floats each for the shipped model: about 1.5 MB).
QUERY_VECTORS_KEPT = 1024


@dataclass
class _Pending:
    """A text being embedded now; others asking for it wait for ``done``."""

    done: threading.Event = field(default_factory=threading.Event)
    vector: Vector | None = None


class QueryVectors:
    """A bounded LRU table of query vectors, by (model id, text); safe across threads."""

    def __init__(self, size: int = QUERY_VECTORS_KEPT) -> None:
        if size < 1:
            raise ValueError("a table of query vectors holds at least one")
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], Vector] = OrderedDict()
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(self, provider: EmbeddingProvider, text: str) -> Vector:
        """The unit vector of ``text`` with ``provider``: from the table, or embedded now.

        Raises what ``provider.embed`` raises (``InvalidInput`` for an empty text,
        ``Unavailable`` when the model cannot be used); a failure is not kept.
        """
        key = (provider.model_id, text)
        with self._lock:
            found = self._vectors.get(key)
            if found is not None:
                self._vectors.move_to_end(key)
                return found
            pending = self._pending.get(key)
            first = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
        if not first:
            pending.done.wait()
            if pending.vector is not None:
                return pending.vector
            return self._embed(provider, text)  # that pass failed: fail (or succeed) here
        # Outside the lock: a slow model must not hold up the queries already known.
        try:
            vector = self._embed(provider, text)
            pending.vector = vector
            with self._lock:
                self._vectors[key] = vector
                self._vectors.move_to_end(key)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
            return vector
        finally:
            with self._lock:
                self._pending.pop(key, None)
            pending.done.set()

    @staticmethod
    def _embed(provider: EmbeddingProvider, text: str) -> Vector:
        vector = provider.embed([text])[0]
        vector.setflags(write=False)
        return vector
