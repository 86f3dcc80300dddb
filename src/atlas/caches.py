"""Every cache this process holds, in one place: what each keeps, by which key, and until when.

The caches are process-wide, not owned by an :class:`atlas.app.Atlas`: the
services reach them from ``settings`` and ``engine`` alone (``get_provider(settings)``
is called from a dozen modules, inside functions that are handed nothing else),
so owning them per ``Atlas`` would mean passing a ``Caches`` down every service.
The keys name the database or data dir a value belongs to, so two libraries open
in one process never see each other's values.

``clear_caches("library")`` forgets every library's state and keeps the loaded
models (what the tests do after each test); ``clear_caches()`` forgets everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from atlas.memo import Memo, Scope

if TYPE_CHECKING:
    from atlas.embeddings.changes import Tracked
    from atlas.embeddings.lexical import LexicalIndex
    from atlas.embeddings.live import VectorTable
    from atlas.embeddings.providers import EmbeddingProvider
    from atlas.embeddings.store import VectorStore
    from atlas.tagging.cutoffs import Cutoffs
    from atlas.tagging.sources.profiles import Profiles
    from atlas.tagging.tuning import TunedModel
    from atlas.tagging.vocabulary import Vocabulary
    from atlas.transcription.whisper import WhisperTranscriber

__all__ = ["CACHES", "Caches", "clear_caches"]


class Caches:
    """The process's caches (one instance: :data:`CACHES`)."""

    def __init__(self) -> None:
        # --- valid whatever library is open ---------------------------------------
        self.providers: Memo[tuple[Any, ...], EmbeddingProvider] = Memo(
            "embedding providers",
            max_entries=16,
            scope="process",
            holds="one embedding provider (a loaded model, or an HTTP client) per "
            "configuration: provider, model, host/device, timeout; never stale",
        )
        self.transcribers: Memo[tuple[str, str, str, int], WhisperTranscriber] = Memo(
            "whisper models",
            max_entries=8,
            scope="process",
            holds="one Whisper wrapper (its model loaded on first use) per model "
            "path, device, compute type and CPU threads; never stale",
        )
        self.label_vectors: Memo[tuple[str, str], Any] = Memo(
            "zero-shot label vectors",
            max_entries=16,
            scope="process",
            holds="the vocabulary's label vectors per embedding model id and "
            "vocabulary digest; a changed vocabulary has a new digest",
        )
        self.phrase_vectors: Memo[tuple[str, str], Any] = Memo(
            "keyphrase vectors",
            max_entries=50_000,
            scope="process",
            holds="the vector of one candidate keyphrase per embedding model id and phrase",
        )
        self.vocabularies: Memo[tuple[str, float | None], Vocabulary] = Memo(
            "tag vocabularies",
            max_entries=16,
            scope="process",
            holds="the parsed tag vocabulary per file path and modification time "
            "('default' for the shipped one); a newer time replaces the file's older one",
            family=lambda key: key[0],
        )
        # --- state of one library (the key names its database or data dir) --------
        self.stores: Memo[tuple[Any, ...], VectorStore] = Memo(
            "vector stores",
            max_entries=32,
            scope="library",
            holds="one Chroma client per store location (embedded folder, or server "
            "host/port/ssl) and collection prefix; the store resets its own client "
            "when it sets a damaged folder aside",
        )
        self.lexical: Memo[str, Tracked[LexicalIndex]] = Memo(
            "lexical indexes",
            max_entries=16,
            scope="library",
            holds="the BM25 index per database URL with the last change-log id read; "
            "brought up to date from the change log before each search, rebuilt "
            "when the log no longer reaches back to it",
        )
        self.live_vectors: Memo[str, Tracked[VectorTable]] = Memo(
            "in-memory vectors",
            max_entries=4,
            scope="library",
            holds="a long-running process's copy of the stored vectors per database URL and "
            "model, with the last change-log id read; brought up to date from the change "
            "log before each search, rebuilt when the log no longer reaches back to it",
        )
        self.cutoffs: Memo[tuple[Any, ...], Cutoffs] = Memo(
            "learned tag cut-offs",
            max_entries=1,
            scope="library",
            holds="the cut-offs learned from tag reviews per database URL, newest "
            "feedback id, rules that take tags away and cut-off settings; only the "
            "latest is kept, so new feedback replaces it",
        )
        self.profiles: Memo[tuple[Any, ...], Profiles | None] = Memo(
            "tag profiles",
            max_entries=16,
            scope="library",
            holds="the trained tag profiles per database URL, embedding model, "
            "profile settings and fingerprint of the confirmed tags; a new "
            "fingerprint replaces the older profiles of the same library",
            family=lambda key: key[:4],
        )
        self.tuned_models: Memo[tuple[Any, ...], TunedModel] = Memo(
            "fine-tuned taggers",
            max_entries=8,
            scope="library",
            holds="the newest fine-tuned tagger per database URL, embedding model and "
            "stored version (row id, created at); a newer version replaces it",
            family=lambda key: key[:2],
        )

    def __iter__(self) -> Iterator[Memo[Any, Any]]:
        return iter(value for value in vars(self).values() if isinstance(value, Memo))

    def clear(self, scope: Scope | None = None) -> None:
        """Forget the values of every cache (of ``scope`` only, when given)."""
        for memo in self:
            if scope is None or memo.scope == scope:
                memo.clear()


#: The process's caches.
CACHES = Caches()


def clear_caches(scope: Scope | None = None) -> None:
    """Forget every cached value (``"library"``: every library's state, models kept)."""
    CACHES.clear(scope)
