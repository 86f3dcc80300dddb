"""Library clustering: k-means, k by silhouette, names from distinctive tags, stored ids."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from atlas.db.tables import clusters, media_clusters
from atlas.embeddings import cluster_library, embed_media
from atlas.embeddings.clusters import distinctive_tags
from atlas.errors import InvalidInput
from conftest import THEMES

THEME_OF = {title: theme for theme, titles in THEMES.items() for title in titles}


def test_distinctive_tags_prefer_what_a_group_has_and_others_lack():
    groups = [
        [["space", "drama"], ["space", "mars", "drama"], ["space", "drama"], ["space"]],
        [["cooking", "drama"], ["cooking", "bread"], ["cooking", "drama"], ["Cooking"]],
    ]
    names = distinctive_tags(groups, limit=2)
    assert names[0][0] == "space" and names[1][0] == "cooking"
    assert "mars" not in names[0]  # carried by one item only
    # Shared by both groups, drama is less telling than the group's own tag.
    assert names[0].index("space") < names[0].index("drama")


@pytest.mark.slow
def test_k_clusters_group_the_library_by_theme_and_are_named_by_tags(atlas, embedded_library):
    report = cluster_library(atlas.dispatcher, k=3)
    assert report.k == 3 and report.media_count == 12
    assert sorted(info.size for info in report.clusters) == [4, 4, 4]
    with atlas.engine.connect() as connection:
        assigned = dict(
            connection.execute(select(media_clusters.c.media_id, media_clusters.c.cluster))
            .tuples()
            .all()
        )
    themes_per_cluster: dict[int, set[str]] = {}
    for title, media_id in embedded_library.items():
        themes_per_cluster.setdefault(assigned[media_id], set()).add(THEME_OF[title])
    assert all(len(themes) == 1 for themes in themes_per_cluster.values())
    # The tag every item of a theme carries, and few others do, names its cluster.
    names = {info.name.split(", ")[0] for info in report.clusters}
    assert names == {"space", "cooking", "Crime"}
    for info in report.clusters:
        assert len(info.examples) == 3


@pytest.mark.slow
def test_auto_chooses_k_by_silhouette(atlas, embedded_library):
    report = cluster_library(atlas.dispatcher, auto=True)
    assert report.k in report.tried and report.k >= 2
    assert report.silhouette == pytest.approx(max(report.tried.values()), abs=1e-3)
    assert set(report.tried) <= {2, 3}  # k is tried up to the square root of 12
    assert "silhouette" in report.method


@pytest.mark.slow
def test_clustering_again_replaces_the_stored_clusters(atlas, embedded_library):
    cluster_library(atlas.dispatcher, k=3)
    cluster_library(atlas.dispatcher, k=2)
    with atlas.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(clusters)) == 2
        assert connection.scalar(select(func.count()).select_from(media_clusters)) == 12
        logged = connection.execute(
            select(func.count()).where(clusters.c.model == "sentence-transformers:all-MiniLM-L6-v2")
        ).scalar()
    assert logged == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 2, "auto": True}, "give `k` or `auto`, not both"),
        ({"k": 1}, "`k` must be at least 2"),
        ({"k": 0}, "`k` must be at least 2"),
    ],
)
def test_bad_cluster_options_are_refused(atlas, options, message):
    with pytest.raises(InvalidInput, match=message):
        cluster_library(atlas.dispatcher, **options)


def test_clustering_needs_embedded_media(atlas, themed_library):
    with pytest.raises(InvalidInput, match="clustering needs at least 3 embedded media"):
        cluster_library(atlas.dispatcher)


@pytest.mark.slow
def test_k_larger_than_the_library_is_refused(atlas, themed_library, embedding_model):
    embed_media(atlas.dispatcher, media_ids=list(themed_library.values())[:4])
    with pytest.raises(InvalidInput, match="`k` 5 is more than the 4 embedded media"):
        cluster_library(atlas.dispatcher, k=5)


def test_auto_takes_the_silhouette_choice_when_the_library_has_clear_groups():
    import numpy as np

    from atlas.embeddings.clusters import auto_clusters

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    points = np.concatenate([c + 0.05 * rng.normal(size=(20, 32)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    k, labels, score, _tried, method = auto_clusters(points.astype("float32"))
    assert (k, method) == (3, "k-means, k=3 chosen by silhouette")
    assert score > 0.5 and len(set(labels.tolist())) == 3


def test_auto_says_so_and_takes_about_sqrt_n_groups_when_there_is_no_structure():
    import numpy as np

    from atlas.embeddings.clusters import auto_clusters

    points = np.random.default_rng(1).normal(size=(36, 64))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    k, labels, _score, tried, method = auto_clusters(points.astype("float32"))
    assert k == max(tried) == 6
    assert method.startswith("k-means, k=6 (about √n): no clear structure")
    assert len(set(labels.tolist())) == 6
