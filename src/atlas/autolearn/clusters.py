"""Cluster changes since the last autolearn run: clusters that grew, split or appeared.

Each run stores a snapshot of the latest clustering (per cluster: its name and
members). The next run matches every earlier cluster to the current cluster that
holds most of its members. Grew: the match holds at least half the earlier
members and is at least ``GROWTH`` times as large, with ``MIN_CHANGE`` more items.
Split: an earlier cluster of at least ``MIN_SIZE`` items whose second-largest
part (``SPLIT_SHARE`` of its members or more) went to another cluster. Appeared:
a current cluster of at least ``MIN_SIZE`` items of which no earlier cluster holds
``NEW_OVERLAP`` or more. Nothing is said until the clustering was made again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from atlas.autolearn.insights import Insight
from atlas.db import database_errors
from atlas.db.tables import clusters, media_clusters

__all__ = ["RULE", "cluster_snapshot", "detect_cluster_insights"]

GROWTH = 1.5
MIN_CHANGE = 5
MIN_SIZE = 10
SPLIT_SHARE = 0.3
NEW_OVERLAP = 0.2

RULE = (
    f"the clustering compared with the one of the last run: grew = at least {GROWTH:g}x as "
    f"many items and {MIN_CHANGE} more, keeping half the earlier ones; split = a cluster of "
    f"{MIN_SIZE}+ items with at least {SPLIT_SHARE:.0%} of them now in another cluster; "
    f"appeared = a cluster of {MIN_SIZE}+ items no earlier cluster holds {NEW_OVERLAP:.0%} of"
)


def cluster_snapshot(engine: Engine, model: str) -> dict[str, Any] | None:
    """The latest clustering of ``model``: when it was made, and each cluster's members."""
    with database_errors(engine), engine.connect() as connection:
        named = connection.execute(
            select(clusters.c.cluster, clusters.c.name, clusters.c.created_at).where(
                clusters.c.model == model
            )
        ).all()
        if not named:
            return None
        members: dict[int, list[int]] = {}
        for row in connection.execute(
            select(media_clusters.c.media_id, media_clusters.c.cluster).where(
                media_clusters.c.model == model
            )
        ):
            members.setdefault(row.cluster, []).append(row.media_id)
    made = max(row.created_at for row in named)
    return {
        "model": model,
        "made": made.isoformat(),
        "clusters": [
            {
                "cluster": row.cluster,
                "name": row.name,
                "members": sorted(members.get(row.cluster, [])),
            }
            for row in named
        ],
    }


def detect_cluster_insights(
    previous: dict[str, Any] | None, current: dict[str, Any] | None
) -> list[Insight]:
    """Clusters that grew, split or appeared between two snapshots."""
    if not previous or not current or previous.get("model") != current.get("model"):
        return []
    if previous.get("made") == current.get("made"):
        return []
    where: dict[int, int] = {}
    now_clusters = {c["cluster"]: c for c in current["clusters"]}
    for cluster in current["clusters"]:
        for media_id in cluster["members"]:
            where[media_id] = cluster["cluster"]
    changes: list[dict[str, Any]] = []
    held: Counter[int] = Counter()
    for before in previous["clusters"]:
        members = before["members"]
        parts = Counter(where[m] for m in members if m in where)
        for cluster, count in parts.items():
            held[cluster] = max(held[cluster], count)
        if not parts:
            continue
        (main, kept), *rest = parts.most_common()
        after = now_clusters[main]
        size, grown = len(members), len(after["members"])
        if kept >= size / 2 and grown >= GROWTH * size and grown - size >= MIN_CHANGE:
            changes.append(
                {"change": "grew", "cluster": after["name"], "before": size, "after": grown}
            )
        if size >= MIN_SIZE and rest and rest[0][1] >= SPLIT_SHARE * size:
            changes.append(
                {
                    "change": "split",
                    "cluster": before["name"],
                    "into": [now_clusters[c]["name"] for c, _ in parts.most_common(3)],
                    "before": size,
                }
            )
    for cluster in current["clusters"]:
        size = len(cluster["members"])
        if size >= MIN_SIZE and held[cluster["cluster"]] < NEW_OVERLAP * size:
            changes.append({"change": "appeared", "cluster": cluster["name"], "after": size})
    if not changes:
        return []
    words = Counter(change["change"] for change in changes)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(words.items()))
    return [
        Insight(
            key="library:clusters-changed",
            kind="library",
            severity="info",
            statement=f"the library's clusters changed since the last run: {summary}",
            rule=RULE,
            evidence={"since": previous.get("made"), "changes": changes[:10]},
        )
    ]
