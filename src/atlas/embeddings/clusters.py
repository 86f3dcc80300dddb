"""Clustering: the whole library (``atlas clusters``) and groups of search results.

The library is clustered with scikit-learn's k-means on the stored (unit) vectors,
so Euclidean k-means ranks like cosine. ``--auto`` tries a ladder of k up to √n and
keeps the one with the best silhouette (cosine, on a sample of up to 2,000 items).
Sentence embeddings of a library rarely separate cleanly: when even the best
silhouette is below 0.1, the scores differ by noise (a k=2 split "wins" by
chance), so Atlas says so and takes the largest k of the ladder, about √n, which
gives browsable groups of about √n items each. Each
item's cluster is stored in ``media_clusters``; the clusters in ``clusters``.

A cluster is named by its most distinctive tags: class-based TF-IDF, where each
cluster is one "document" made of its items' tags. A tag scores by the share of
the cluster's items that carry it times ``log(1 + A / f)``, with ``f`` the tag's
count in the whole library and ``A`` the average number of tags per cluster, so a
tag that most items of a cluster have and few items elsewhere have names it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, func, insert, select

from atlas.config import Settings
from atlas.db import database_errors, utcnow
from atlas.db.tables import clusters, media, media_clusters, media_embeddings
from atlas.embeddings.lexical import tokenize
from atlas.embeddings.providers import get_provider
from atlas.embeddings.repository import chunks, load_tags
from atlas.embeddings.store import get_store
from atlas.errors import EMBED_MISSING, AtlasError, InvalidInput, invalid
from atlas.media.tags import SOURCE_RANK, normalise_tag
from atlas.tasks import Dispatcher, TaskContext, task_type

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "AUTO_K_LADDER",
    "ClusterInfo",
    "ClusterReport",
    "auto_clusters",
    "cluster_library",
    "compute_clusters",
    "distinctive_tags",
    "group_labels",
]

#: Below this best silhouette the library shows no clear structure to choose k by.
CLEAR_STRUCTURE = 0.1
#: The k values ``--auto`` tries (those below the number of items).
AUTO_K_LADDER = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40)
MIN_ITEMS = 3
_SILHOUETTE_SAMPLE = 2000
_NAME_TAGS = 3


@dataclass(frozen=True)
class ClusterInfo:
    cluster: int
    name: str
    tags: list[str]
    size: int
    #: A few (id, title) pairs, those nearest the cluster's centre first.
    examples: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterReport:
    model: str
    k: int
    method: str
    silhouette: float | None
    media_count: int
    clusters: list[ClusterInfo]
    #: Silhouette of each k tried with ``--auto``.
    tried: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterReport:
        infos = [
            ClusterInfo(
                cluster=c["cluster"],
                name=c["name"],
                tags=list(c["tags"]),
                size=c["size"],
                examples=[(int(e[0]), str(e[1])) for e in c["examples"]],
            )
            for c in data["clusters"]
        ]
        tried = {int(k): float(v) for k, v in (data.get("tried") or {}).items()}
        return cls(
            model=data["model"],
            k=data["k"],
            method=data["method"],
            silhouette=data["silhouette"],
            media_count=data["media_count"],
            clusters=infos,
            tried=tried,
        )


# --- naming ----------------------------------------------------------------------


def distinctive_tags(
    groups: Sequence[Sequence[Sequence[str]]], *, limit: int = _NAME_TAGS
) -> list[list[str]]:
    """For each group (a list of items, each a list of tags), its most telling tags.

    Class-based TF-IDF (see the module docstring). A tag must be carried by at
    least two items of a group (one, for groups of fewer than four items).
    Deterministic: ties go to the alphabetically first tag.
    """
    spelling: dict[str, str] = {}
    per_group: list[Counter[str]] = []
    for items in groups:
        counts: Counter[str] = Counter()
        for tags in items:
            norms = set()
            for tag in tags:
                norm = normalise_tag(tag)
                if norm:
                    spelling.setdefault(norm, tag)
                    norms.add(norm)
            counts.update(norms)
        per_group.append(counts)
    total: Counter[str] = Counter()
    for counts in per_group:
        total.update(counts)
    average = sum(total.values()) / max(1, len(per_group))

    names = []
    for items, counts in zip(groups, per_group, strict=True):
        size = max(1, len(items))
        needed = 1 if size < 4 else 2
        scored = sorted(
            (
                (-(count / size) * math.log(1.0 + average / total[norm]), norm)
                for norm, count in counts.items()
                if count >= needed
            ),
        )
        names.append([spelling[norm] for _, norm in scored[:limit]])
    return names


# --- k-means -----------------------------------------------------------------------


def _kmeans(vectors: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    from sklearn.cluster import KMeans

    # Several starts: with one or three, k-means on sentence embeddings lands in
    # poor local optima often enough to swing the choice of k.
    model = KMeans(n_clusters=k, n_init=10 if len(vectors) <= 5000 else 3, random_state=0)
    labels: npt.NDArray[np.int64] = model.fit_predict(vectors)
    return labels


def _silhouette(vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) < 2:
        return -1.0
    sample = min(len(vectors), _SILHOUETTE_SAMPLE)
    return float(
        silhouette_score(vectors, labels, metric="cosine", sample_size=sample, random_state=0)
    )


def choose_k(
    vectors: npt.NDArray[np.float32], ladder: Sequence[int] | None = None
) -> tuple[int, npt.NDArray[np.int64], float, dict[int, float]]:
    """The k with the best silhouette; its labels and the score of every k tried.

    The default ladder is :data:`AUTO_K_LADDER` up to √n: the silhouette of
    sentence embeddings tends to keep rising as clusters shrink towards single
    items, which names nothing.
    """
    if ladder is None:
        limit = max(2, round(math.sqrt(len(vectors))))
        ladder = [k for k in AUTO_K_LADDER if k <= limit]
    best: tuple[int, Any, float] | None = None
    tried: dict[int, float] = {}
    for k in ladder:
        if k >= len(vectors):
            break
        labels = _kmeans(vectors, k)
        score = _silhouette(vectors, labels)
        tried[k] = round(score, 4)
        if best is None or score > best[2]:
            best = (k, labels, score)
    if best is None:
        raise InvalidInput(f"clustering needs at least {MIN_ITEMS} embedded media")
    return best[0], best[1], best[2], tried


def auto_clusters(
    vectors: npt.NDArray[np.float32],
) -> tuple[int, npt.NDArray[np.int64], float, dict[int, float], str]:
    """k, labels, silhouette, the scores tried and how k was chosen, for ``--auto``."""
    k, labels, score, tried = choose_k(vectors)
    largest = max(tried)
    if score >= CLEAR_STRUCTURE or k == largest:
        return k, labels, score, tried, f"k-means, k={k} chosen by silhouette"
    method = (
        f"k-means, k={largest} (about √n): no clear structure to choose k by "
        f"(best silhouette {score:.3f} < {CLEAR_STRUCTURE})"
    )
    return largest, _kmeans(vectors, largest), tried[largest], tried, method


def group_labels(vectors: npt.NDArray[np.float32], *, max_groups: int = 6) -> list[int]:
    """Group a handful of result vectors: k by silhouette, one group if none stands out."""
    n = len(vectors)
    if n < 4:
        return [0] * n
    ladder = [k for k in range(2, min(max_groups, n - 1) + 1)]
    _, labels, score, _ = choose_k(vectors, ladder)
    if score < 0.05:
        return [0] * n
    return [int(label) for label in labels]


# --- the library ---------------------------------------------------------------------


def cluster_library(
    dispatcher: Dispatcher, *, k: int | None = None, auto: bool = False
) -> ClusterReport:
    """Cluster every embedded item (``cluster`` task) and store each item's cluster.

    ``k`` clusters, or with ``auto`` (the default when ``k`` is not given) the k
    with the best silhouette. Replaces the previous clustering of the current
    model in one transaction. Raises ``InvalidInput`` for a bad ``k`` or a library
    with fewer than three embedded items.
    """
    if k is not None and auto:
        raise InvalidInput("give `k` or `auto`, not both")
    if k is not None and k < 2:
        raise invalid("k", "must be at least 2")
    model_id = get_provider(dispatcher.settings).model_id
    embedded = _embedded_count(dispatcher.engine, model_id)
    if embedded < MIN_ITEMS:
        raise InvalidInput(
            f"clustering needs at least {MIN_ITEMS} embedded media ({embedded} embedded "
            f"with {model_id})",
            repair=EMBED_MISSING,
        )
    if k is not None and k > embedded:
        raise InvalidInput(f"`k` {k} is more than the {embedded} embedded media")
    if not dispatcher.queued:
        get_store(dispatcher.settings).check()
    outcome = dispatcher.submit("cluster", {"k": k})
    if dispatcher.queued:
        outcome = dispatcher.wait([outcome.task_id])[0]
    if not outcome.ok:
        raise AtlasError(f"clustering failed: {outcome.error or outcome.status}")
    return ClusterReport.from_dict(outcome.result)


def _embedded_count(engine: Engine, model_id: str) -> int:
    with database_errors(engine), engine.connect() as connection:
        count = connection.scalar(select(func.count()).where(media_embeddings.c.model == model_id))
    return int(count or 0)


@task_type("cluster", retries=1, retry_delay_s=1.0)
def cluster_task(ctx: TaskContext, k: int | None = None) -> dict[str, Any]:
    """Cluster the library's vectors with k-means and store each item's cluster."""
    return compute_clusters(ctx.settings, ctx.engine, k=k).to_dict()


def compute_clusters(settings: Settings, engine: Engine, *, k: int | None = None) -> ClusterReport:
    """Cluster, name and store (one transaction); ``k=None`` chooses k by silhouette."""
    import numpy as np

    model_id = get_provider(settings).model_id
    with database_errors(engine), engine.connect() as connection:
        recorded = {
            row.media_id: row.dimension
            for row in connection.execute(
                select(media_embeddings.c.media_id, media_embeddings.c.dimension).where(
                    media_embeddings.c.model == model_id
                )
            )
        }
    if len(recorded) < MIN_ITEMS:
        raise InvalidInput(
            f"clustering needs at least {MIN_ITEMS} embedded media "
            f"({len(recorded)} embedded with {model_id})",
            repair=EMBED_MISSING,
        )
    dimension = Counter(recorded.values()).most_common(1)[0][0]
    collection = get_store(settings).collection(model_id, dimension, create=False)
    ids, matrix = collection.all_vectors() if collection is not None else ([], None)
    keep = [i for i, media_id in enumerate(ids) if media_id in recorded]
    ids = [ids[i] for i in keep]
    if len(ids) < MIN_ITEMS or matrix is None:
        raise InvalidInput(
            f"clustering needs at least {MIN_ITEMS} embedded media in the vector store",
            repair=EMBED_MISSING,
        )
    vectors = matrix[keep]
    if k is not None and k > len(ids):
        raise InvalidInput(f"`k` {k} is more than the {len(ids)} embedded media")

    tried: dict[int, float] = {}
    if k is None:
        k, labels, score, tried, method = auto_clusters(vectors)
    else:
        labels = _kmeans(vectors, k)
        score = _silhouette(vectors, labels) if k < len(ids) else -1.0
        method = f"k-means, k={k}"

    with database_errors(engine), engine.connect() as connection:
        tags = load_tags(connection, ids)
        facts = {
            row.id: (row.title or "", row.genre)
            for part in chunks(ids)
            for row in connection.execute(
                select(media.c.id, media.c.title, media.c.genre).where(media.c.id.in_(part))
            )
        }
    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        members.setdefault(int(label), []).append(index)
    order = sorted(members, key=lambda c: (-len(members[c]), min(members[c])))
    renumber = {old: new for new, old in enumerate(order)}
    labels_of = [_labels(tags[media_id], facts.get(media_id, ("", None))[1]) for media_id in ids]
    names = distinctive_tags([[labels_of[i] for i in members[c]] for c in order])
    # Items without tags or genre: name their clusters by their titles' words.
    title_words = distinctive_tags(
        [[tokenize(facts.get(ids[i], ("", None))[0]) for i in members[c]] for c in order]
    )
    names = [name or words for name, words in zip(names, title_words, strict=True)]

    examples = {}
    for old in order:
        rows = members[old]
        centre = vectors[rows].mean(axis=0)
        examples[old] = [
            ids[i] for i in sorted(rows, key=lambda i: -float(np.dot(vectors[i], centre)))[:3]
        ]
    titles = {media_id: title for media_id, (title, _) in facts.items()}
    infos = []
    for old, group_tags in zip(order, names, strict=True):
        infos.append(
            ClusterInfo(
                cluster=renumber[old],
                name=", ".join(group_tags) if group_tags else f"cluster {renumber[old]}",
                tags=group_tags,
                size=len(members[old]),
                examples=[(m, titles.get(m) or f"media {m}") for m in examples[old]],
            )
        )
    report = ClusterReport(
        model=model_id,
        k=k,
        method=method,
        silhouette=round(score, 4) if score > -1 else None,
        media_count=len(ids),
        clusters=infos,
        tried=tried,
    )
    _store(engine, report, ids, [renumber[int(label)] for label in labels.tolist()])
    return report


def _labels(tags: Sequence[Any], genre: str | None) -> list[str]:
    """What names a cluster: confirmed tags, confident automatic ones, the genre."""
    names = [tag.tag for tag in tags if SOURCE_RANK.get(tag.source, 0) > 0 or tag.confidence >= 0.5]
    return [*names, genre] if genre else names


def _store(
    engine: Engine, report: ClusterReport, ids: Sequence[int], labels: Sequence[int]
) -> None:
    now = utcnow()
    with database_errors(engine), engine.begin() as connection:
        connection.execute(delete(media_clusters).where(media_clusters.c.model == report.model))
        connection.execute(delete(clusters).where(clusters.c.model == report.model))
        connection.execute(
            insert(clusters),
            [
                {
                    "model": report.model,
                    "cluster": info.cluster,
                    "name": info.name,
                    "tags": info.tags,
                    "size": info.size,
                    "method": report.method[:100],
                    "created_at": now,
                }
                for info in report.clusters
            ],
        )
        rows = [
            {"media_id": media_id, "model": report.model, "cluster": label}
            for media_id, label in zip(ids, labels, strict=True)
        ]
        for start in range(0, len(rows), 1000):
            connection.execute(insert(media_clusters), rows[start : start + 1000])


def stored_clusters(engine: Engine, model: str) -> dict[int, int]:
    """media id -> cluster of the latest clustering of ``model``."""
    with database_errors(engine), engine.connect() as connection:
        return dict(
            connection.execute(
                select(media_clusters.c.media_id, media_clusters.c.cluster).where(
                    media_clusters.c.model == model
                )
            ).all()
        )
