"""Copy the vectors of a library from one Chroma store to another, as they are.

Each of the library's collections (``<prefix>-...``, see :mod:`atlas.embeddings.store`)
is read page by page — ids, embeddings, documents, metadata — and upserted by id
into the collection of the same name, configuration and metadata in the target:
nothing is computed again, and a copy killed at any point is finished by running it
again (vectors the target already holds are skipped, the rest upserted).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atlas.embeddings.store import VectorStore
from atlas.errors import Conflict

__all__ = ["CollectionCount", "copy_vectors", "library_collections", "verify_vectors"]

_PAGE = 1_000
# Equal vectors: the embedded store hands float32 values back a unit in the last
# place off (read twice, a value may differ by that much), so "the same" means
# within float32 rounding; a different vector is off by many orders more.
_RTOL, _ATOL = 1e-6, 1e-8


@dataclass(frozen=True)
class CollectionCount:
    """One collection after a copy."""

    name: str
    source_vectors: int
    target_vectors: int
    #: Vectors written by this run.
    copied: int
    #: Vectors of the source the target lacks.
    missing: int
    #: Vectors compared value by value, and how many of them differ.
    sampled: int
    differing: int

    @property
    def matches(self) -> bool:
        return (
            self.source_vectors == self.target_vectors and self.missing == 0 and self.differing == 0
        )


def library_collections(store: VectorStore) -> list[Any]:
    """The store's collections that belong to the library (by name prefix), by name."""
    with store.errors():
        found = [
            raw
            for raw in store.client.list_collections()
            if raw.name.startswith(f"{store.prefix}-")
        ]
    return sorted(found, key=lambda raw: raw.name)


def _ids(store: VectorStore, raw: Any) -> set[str]:
    ids: set[str] = set()
    with store.errors():
        total = int(raw.count())
        for offset in range(0, total, 10 * _PAGE):
            ids.update(raw.get(include=[], limit=10 * _PAGE, offset=offset)["ids"])
    return ids


def _target_collection(target: VectorStore, raw: Any, *, create: bool) -> Any:
    """The target's collection of ``raw``'s name; None when it lacks one and not ``create``."""
    with target.errors():
        if not create:
            try:
                return target.client.get_collection(raw.name, embedding_function=None)
            except Exception as exc:  # Chroma raises its own NotFoundError
                if type(exc).__name__ != "NotFoundError" and "does not exist" not in str(exc):
                    raise
                return None
        hnsw = {k: v for k, v in ((raw.configuration or {}).get("hnsw") or {}).items() if v}
        return target.client.get_or_create_collection(
            raw.name,
            configuration={"hnsw": hnsw} if hnsw else None,
            metadata=raw.metadata or None,
            embedding_function=None,
        )


def copy_vectors(
    source: VectorStore,
    target: VectorStore,
    *,
    batch: int = _PAGE,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Copy every library collection of ``source`` into ``target``, ``batch`` vectors per
    request; returns the vectors written per collection.

    Idempotent. Raises ``Conflict`` when a target collection holds vectors of ids the
    source lacks (another library's, or work done since), before writing anything.
    """
    import numpy as np

    plans = []
    for raw in library_collections(source):
        existing = _target_collection(target, raw, create=False)
        present = _ids(target, existing) if existing is not None else set()
        if present:
            foreign = present - _ids(source, raw)
            if foreign:
                raise Conflict(
                    f"{target.describe()} already holds {len(foreign)} vector(s) in "
                    f"{raw.name} that this library does not have; copy into another server "
                    "or collection prefix"
                )
        plans.append((raw, present))

    copied: dict[str, int] = {}
    for raw, present in plans:
        collection = _target_collection(target, raw, create=True)
        written = 0
        with source.errors():
            total = int(raw.count())
        with target.errors():
            step = max(1, min(batch, int(target.client.get_max_batch_size())))
        for offset in range(0, total, step):
            with source.errors():
                got = raw.get(
                    include=["embeddings", "documents", "metadatas"], limit=step, offset=offset
                )
            keep = [i for i, key in enumerate(got["ids"]) if key not in present]
            if keep:
                documents = [got["documents"][i] for i in keep]
                metadatas = [got["metadatas"][i] for i in keep]
                with target.errors():
                    collection.upsert(
                        ids=[got["ids"][i] for i in keep],
                        embeddings=np.asarray(got["embeddings"], dtype=np.float32)[keep],
                        metadatas=metadatas if any(m for m in metadatas) else None,
                        documents=documents if any(d is not None for d in documents) else None,
                    )
                written += len(keep)
            if on_progress is not None:
                on_progress(len(got["ids"]))
        copied[raw.name] = written
    return copied


def verify_vectors(
    source: VectorStore,
    target: VectorStore,
    copied: dict[str, int],
    *,
    sample: int = 100,
) -> list[CollectionCount]:
    """Compare each library collection: counts, ids, and ``sample`` vectors value by value
    (to within float32 rounding), with their metadata and documents."""
    import numpy as np

    counts = []
    for raw in library_collections(source):
        source_ids = _ids(source, raw)
        existing = _target_collection(target, raw, create=False)
        target_ids = _ids(target, existing) if existing is not None else set()
        common = sorted(source_ids & target_ids)
        picked = random.sample(common, min(sample, len(common)))
        differing = 0
        if picked:
            include = ["embeddings", "documents", "metadatas"]
            with source.errors():
                mine = raw.get(ids=picked, include=include)
            with target.errors():
                theirs = existing.get(ids=picked, include=include)
            by_id = {key: i for i, key in enumerate(theirs["ids"])}
            for i, key in enumerate(mine["ids"]):
                j = by_id.get(key)
                same = (
                    j is not None
                    and np.allclose(
                        np.asarray(mine["embeddings"][i], dtype=np.float32),
                        np.asarray(theirs["embeddings"][j], dtype=np.float32),
                        rtol=_RTOL,
                        atol=_ATOL,
                    )
                    and mine["metadatas"][i] == theirs["metadatas"][j]
                    and mine["documents"][i] == theirs["documents"][j]
                )
                differing += not same
        counts.append(
            CollectionCount(
                name=raw.name,
                source_vectors=len(source_ids),
                target_vectors=len(target_ids),
                copied=copied.get(raw.name, 0),
                missing=len(source_ids - target_ids),
                sampled=len(picked),
                differing=differing,
            )
        )
    return counts
