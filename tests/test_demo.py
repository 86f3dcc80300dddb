"""The demo builds real media with speech and runs Atlas on it."""

from __future__ import annotations

import json

import pytest

from atlas.app import open_atlas
from atlas.demo import CORRUPT_FILE_NAME, DEMO_QUERY, load_items, run_demo
from atlas.media import normalise_tag
from atlas.tagging import list_media_tags
from conftest import requires_ffmpeg

pytestmark = pytest.mark.slow


def test_the_shipped_sample_library_is_complete():
    items = load_items()
    assert len(items) >= 30
    assert len({item.slug for item in items}) == len(items)
    assert {item.kind for item in items} == {"video", "audio"}
    assert sum(item.subtitles for item in items) >= 5
    assert all(item.title and item.genres and item.tags and item.synopsis for item in items)


def test_demo_builds_media_ingests_it_and_reports_the_corrupt_file(cli, tmp_path):
    folder = tmp_path / "demo"
    result = cli("demo", "--dir", str(folder), "--items", "4", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ingest"] == {"new": 4, "error": 1}
    [failure] = report["failures"]
    assert failure["path"].endswith(CORRUPT_FILE_NAME)
    kinds = {item["media_type"] for item in report["media"]}
    assert kinds <= {"video", "audio"} and report["media"]
    assert all(item["duration_s"] > 3 for item in report["media"])  # real speech
    assert list(folder.glob("videos/*.srt"))  # subtitle sidecars were written
    # The tagging stage tagged every item (auto_process is off here: no chain did).
    assert report["tagging"] == {"tagged": 4}
    for item in report["media"]:
        assert any(tag["source"] == "auto" for tag in item["tags"]), item["title"]


@requires_ffmpeg
def test_demo_embeds_during_ingest_then_searches_and_clusters(
    make_settings, tmp_path, embedding_model
):
    atlas = open_atlas(make_settings(auto_process=True))
    try:
        report = run_demo(atlas, tmp_path / "demo", limit=5)
        # The demo reviews every other item in the sample's order, the first included
        # (ids follow the order in which files finished ingesting).
        order = [item.title for item in load_items()]
        first = min(report.media.items, key=lambda item: order.index(item.title))
        first_tags = list_media_tags(atlas.engine, str(first.id)).tags
    finally:
        atlas.close()
    assert report.ingest.summary() == {"new": 5, "error": 1}
    assert report.ingest.failed[0].path.endswith(CORRUPT_FILE_NAME)
    # The pipeline tagged and embedded every file as it was ingested: nothing was left to do.
    assert report.tagging.summary() == {"unchanged": 5}
    assert report.embedding.embedded == 0 and report.embedding.unchanged == 5
    assert all(
        any(tag.source == "auto" and tag.explanation for tag in tags)
        for tags in report.media.tags.values()
    )
    assert report.search is not None and report.search.query == DEMO_QUERY
    assert report.search.hits
    assert report.similar is not None and report.similar.media_title == "The Quiet Orbit"
    assert len(report.similar.hits) == 4
    assert report.clusters is not None and report.clusters.media_count == 5
    # Learning: every other item corrected to the sample's tags, the rest tagged again.
    learning = report.learning
    assert learning is not None and (learning.reviewed, learning.held_out) == (3, 2)
    assert learning.review_edits > 0 and learning.edits_before > 0
    # The demo ends with an autolearn cycle over the library it built, logged as a task.
    assert report.autolearn is not None and report.autolearn["task_id"]
    assert report.autolearn["previous_run_at"] is None
    sample = next(item for item in load_items() if item.title == first.title)
    assert {tag.norm for tag in first_tags} == {
        normalise_tag(t) for t in sample.genres + sample.tags
    }
    assert {tag.source for tag in first_tags} == {"user"}
