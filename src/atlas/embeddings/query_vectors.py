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

from typing import TYPE_CHECKING

from atlas.embeddings.providers import EmbeddingProvider
from atlas.memo import Memo

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

__all__ = ["QUERY_VECTORS_KEPT", "QueryVectors"]

#: Query vectors kept (384 floats each for the shipped model: about 1.5 MB).
QUERY_VECTORS_KEPT = 1024


class QueryVectors:
    """A bounded LRU table of query vectors, by (model id, text); safe across threads."""

    def __init__(self, size: int = QUERY_VECTORS_KEPT) -> None:
        if size < 1:
            raise ValueError("a table of query vectors holds at least one")
        self.size = size
        self._vectors: Memo[tuple[str, str], Vector] = Memo(
            "query vectors",
            max_entries=size,
            scope="process",
            holds="the unit vector of a search text per embedding model id and text",
        )

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(self, provider: EmbeddingProvider, text: str) -> Vector:
        """The unit vector of ``text`` with ``provider``: from the table, or embedded now.

        Raises what ``provider.embed`` raises (``InvalidInput`` for an empty text,
        ``Unavailable`` when the model cannot be used), to every request that
        waited for that pass; a failure is not kept.
        """
        # Built outside the table's lock: a slow model must not hold up the queries
        # already known.
        return self._vectors.get((provider.model_id, text), lambda: self._embed(provider, text))

    @staticmethod
    def _embed(provider: EmbeddingProvider, text: str) -> Vector:
        vector = provider.embed([text])[0]
        vector.setflags(write=False)
        return vector
