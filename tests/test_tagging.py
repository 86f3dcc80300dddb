"""The automatic tagger with the real model, on both databases: sources, storage, rules, chain."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, insert, select

from _feedback import add_item
from atlas.app import open_atlas
from atlas.db import utcnow
from atlas.db.tables import (
    media,
    media_embeddings,
    media_tag_inputs,
    media_tag_rejections,
    rule_applications,
    task_logs,
    tasks,
)
from atlas.feedback import feedback_loop, list_rules, track_tag_edits
from atlas.media import ingest_paths
from atlas.media.catalog import CatalogEntry, store_entries
from atlas.media.tags import Tag, upsert_tags
from atlas.tagging import (
    add_media_tags,
    list_media_tags,
    load_inputs,
    predict_tags,
    remove_media_tags,
    retag_media,
)
from atlas.tagging.cutoffs import reviewed_tags
from conftest import STATION

pytestmark = pytest.mark.slow


def _new_item(atlas, **values) -> int:
    (created,), _ = store_entries(atlas.engine, [CatalogEntry.model_validate(values)])
    return created


def _review_new_item(atlas, n: int, shown: list[Tag], *, keep: str) -> int:
    """A new item showing ``shown`` (automatic tags), fully reviewed to ``keep``."""
    reviewed = _new_item(atlas, title=f"Reviewed {n}", description="a film")
    with atlas.engine.begin() as connection:
        upsert_tags(connection, reviewed, shown)
    track_tag_edits(atlas.engine, atlas.settings.feedback, reviewed, tags=keep)
    return reviewed


def _tags(atlas, media_id) -> dict[str, Tag]:
    return {tag.tag: tag for tag in list_media_tags(atlas.engine, str(media_id)).tags}


def _task_count(atlas) -> int:
    with atlas.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(tasks)))


def test_every_source_gives_evidence_and_the_combination_explains_it(tagger):
    station = _new_item(tagger, **STATION)
    with tagger.engine.connect() as connection:
        inputs = load_inputs(connection, [station])
    prediction = predict_tags(tagger.settings, tagger.engine, list(inputs.values()))[station]
    sources = prediction.sources
    assert "space station" in sources["keyphrases"].evidence
    assert (
        sources["keyphrases"]
        .evidence["space station"]
        .detail.startswith("keyphrase of the description (")
    )
    zero_shot = sources["zero_shot"].evidence["science fiction"]
    assert zero_shot.detail.startswith("zero-shot 0.") and zero_shot.detail.endswith(
        "vs label 'Science Fiction'"
    )
    # Neighbours and profiles know the library's own tags (the themed items' genres).
    neighbours = sources["neighbours"].evidence
    assert neighbours["science fiction"].score > max(
        neighbours[norm].score for norm in ("food", "crime") if norm in neighbours
    )
    assert sources["profiles"].evidence["science fiction"].detail.startswith("learned profile ")
    assert sources["profiles"].evidence["science fiction"].score > 0.5
    assert "food" not in {p.norm for p in prediction.tags}

    scifi = next(p for p in prediction.tags if p.norm == "science fiction")
    assert scifi.kind == "genre" and set(scifi.scores) >= {"zero_shot", "profiles", "neighbours"}
    parts = scifi.explanation.split("; ")
    assert parts[0].startswith("zero-shot ") and parts[1].startswith("learned profile ")
    assert "nearest tagged items carry it (3 confirmed)" in parts[2]


def test_retag_stores_automatic_tags_with_confidence_and_explanation(tagger):
    station = _new_item(tagger, **STATION)
    report = retag_media(tagger.dispatcher, targets=[str(station)])
    assert report.summary() == {"tagged": 1} and report.failed_tasks == []
    tags = _tags(tagger, station)
    scifi = tags["Science Fiction"]
    assert scifi.source == "auto" and scifi.kind == "genre" and 0 < scifi.confidence <= 1
    assert "zero-shot" in (scifi.explanation or "") and "learned profile" in scifi.explanation
    assert all(tag.source == "auto" for tag in tags.values())
    with tagger.engine.connect() as connection:
        row = connection.execute(
            select(media_tag_inputs).where(media_tag_inputs.c.media_id == station)
        ).one()
        logs = connection.execute(
            select(task_logs.c.status).where(task_logs.c.task_type == "tag")
        ).scalars()
        assert list(logs) == ["completed"]
    assert row.input_hash and row.tagged_at and row.dimension == 384


def test_retag_with_unchanged_input_does_nothing_and_force_tags_again(tagger):
    station = _new_item(tagger, **STATION)
    retag_media(tagger.dispatcher, targets=[str(station)])
    before = _task_count(tagger)
    again = retag_media(tagger.dispatcher, targets=[str(station)])
    assert again.summary() == {"unchanged": 1} and _task_count(tagger) == before
    forced = retag_media(tagger.dispatcher, targets=[str(station)], force=True)
    assert forced.summary() == {"tagged": 1} and _task_count(tagger) == before + 1
    # A changed description is a changed input: plain retag tags it again.
    with tagger.engine.begin() as connection:
        connection.execute(
            media.update()
            .where(media.c.id == station)
            .values(description="A baker shows how sourdough bread rises in her kitchen.")
        )
    changed = retag_media(tagger.dispatcher, targets=[str(station)])
    assert changed.summary() == {"tagged": 1}
    tags = _tags(tagger, station)
    assert "Food" in tags and "Science Fiction" not in tags
    assert "Science Fiction" in changed.items[0].removed


def test_retag_replaces_stale_automatic_tags_but_never_user_or_rule_tags(tagger):
    station = _new_item(tagger, **STATION)
    with tagger.engine.begin() as connection:
        upsert_tags(
            connection,
            station,
            [
                Tag("Obsolete", source="auto", confidence=0.9, explanation="an old guess"),
                Tag("Keep Me", source="user"),
                Tag("Ruled", source="rule", confidence=0.8),
            ],
        )
    retag_media(tagger.dispatcher, targets=[str(station)])
    tags = _tags(tagger, station)
    assert "Obsolete" not in tags
    assert tags["Keep Me"].source == "user" and tags["Ruled"].source == "rule"
    assert tags["Science Fiction"].source == "auto"


def test_user_tags_are_never_overridden_and_removed_tags_never_come_back(tagger):
    station = _new_item(tagger, **STATION)
    add_media_tags(tagger.engine, tagger.settings.feedback, str(station), ["Science Fiction"])
    retag_media(tagger.dispatcher, targets=[str(station)])
    tags = _tags(tagger, station)
    assert tags["Science Fiction"].source == "user" and tags["Science Fiction"].confidence == 1
    assert tags["Science Fiction"].explanation == "set by the user"
    # The kind the library holds it as (the tagger's genre), not the default topic.
    assert tags["Science Fiction"].kind == "genre"

    auto = [tag.tag for tag in tags.values() if tag.source == "auto"]
    assert auto
    remove_media_tags(tagger.engine, tagger.settings.feedback, str(station), auto)
    with tagger.engine.connect() as connection:
        rejected = set(
            connection.execute(
                select(media_tag_rejections.c.tag).where(media_tag_rejections.c.media_id == station)
            ).scalars()
        )
    assert rejected == set(auto)
    retag_media(tagger.dispatcher, targets=[str(station)], force=True)
    assert not set(auto) & set(_tags(tagger, station))


def test_learned_rules_act_on_the_new_predictions_when_they_are_stored(
    make_settings, embedding_model, tmp_path
):
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text(
        "genre: Sci-Fi: space, aliens, the future, advanced technology\n"
        "genre: Cookery: recipes, chefs, kitchens, baking\n",
        encoding="utf-8",
    )
    atlas = open_atlas(
        make_settings(
            auto_process=False,
            **{
                "tagging.vocabulary_file": str(vocabulary),
                "tagging.threshold": 0.05,
                "tagging.keyphrases": 0,
            },
        )
    )
    try:
        # The user replaces Atlas's 'sci-fi' by 'Science Fiction' ten times: a rule
        # (10 of 10 gives confidence 0.92, over the default floor 0.9).
        for n in range(10):
            item = add_item(atlas.engine, f"Taught {n}", auto=["sci-fi", f"extra{n}"])
            track_tag_edits(
                atlas.engine, atlas.settings.feedback, item, tags=f"Science Fiction, extra{n}"
            )
        feedback_loop(atlas.dispatcher)
        (rule,) = [r for r in list_rules(atlas.engine) if r.rule_type == "tag_mapping"]
        assert rule.description.startswith("'sci-fi' is replaced by 'Science Fiction'")

        station = _new_item(atlas, **STATION)
        report = retag_media(atlas.dispatcher, targets=[str(station)])
        tags = _tags(atlas, station)
        assert "Sci-Fi" not in tags
        assert tags["Science Fiction"].source == "rule"
        assert tags["Science Fiction"].explanation.startswith(f"learned rule {rule.id} ")
        assert report.items[0].rule_applications >= 1
        with atlas.engine.connect() as connection:
            applied = connection.execute(
                select(rule_applications.c.rule_id, rule_applications.c.via).where(
                    rule_applications.c.media_id == station
                )
            ).all()
        assert (rule.id, "tagger") in [tuple(row) for row in applied]
    finally:
        atlas.close()


def test_a_tag_kind_the_user_always_removes_stops_being_proposed(
    make_settings, embedded_library, cli
):
    atlas = open_atlas(
        make_settings(
            auto_process=False,
            **{"tagging.profile_min_examples": 3, "tagging.cutoff_min_reviews": 6},
        )
    )
    try:
        station = _new_item(atlas, **STATION)
        with atlas.engine.connect() as connection:
            (item,) = load_inputs(connection, [station]).values()
        before = predict_tags(atlas.settings, atlas.engine, [item])[station]
        assert any(tag.kind == "keyword" for tag in before.tags)

        # Six reviews: the user keeps Atlas's genre and removes its two keyphrases.
        for n in range(6):
            shown = [
                Tag("Drama", kind="genre", source="auto", confidence=0.5),
                Tag(f"phrase {n}", kind="keyword", source="auto", confidence=0.4),
                Tag(f"words {n}", kind="keyword", source="auto", confidence=0.6),
            ]
            _review_new_item(atlas, n, shown, keep="Drama")

        after = predict_tags(atlas.settings, atlas.engine, [item])[station]
        assert not any(tag.kind == "keyword" for tag in after.tags)
        assert "keyphrases" in before.sources and "keyphrases" not in after.sources
        assert {tag.norm for tag in after.tags} == {
            tag.norm for tag in before.tags if tag.kind != "keyword"
        }
        assert "keyword tags not proposed: you kept 0 of the last 12 (0%)" in after.notes
        report = retag_media(atlas.dispatcher, targets=[str(station)])
        assert not any(tag.kind == "keyword" for tag in report.items[0].tags)

        # The CLI says what the library taught the tagger once, not once per item.
        other = _new_item(atlas, title="Moon Crew", description="Astronauts repair a rocket.")
        result = cli(
            "media-tags",
            "retag",
            str(station),
            str(other),
            "--force",
            env={"ATLAS_TAGGING__CUTOFF_MIN_REVIEWS": "6"},
        )
        assert result.exit_code == 0, result.output
        lines = [line for line in result.stdout.splitlines() if "not proposed" in line]
        assert lines == ["2 items: keyword tags not proposed: you kept 0 of the last 12 (0%)"]
    finally:
        atlas.close()


def test_the_genre_floor_gives_an_item_a_genre_unless_it_has_one_of_its_own(
    make_settings, embedding_model, tmp_path
):
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text(
        "genre: Sci-Fi: space, aliens, the future, advanced technology\n"
        "genre: Cookery: recipes, chefs, kitchens, baking\n"
        "topic: Travel: journeys, trips, holidays\n",
        encoding="utf-8",
    )
    atlas = open_atlas(
        make_settings(
            auto_process=False,
            **{
                "tagging.vocabulary_file": str(vocabulary),
                "tagging.threshold": 0.99,  # no tag reaches it
                "tagging.genre_floor": 0.01,
                "tagging.keyphrases": 0,
            },
        )
    )
    try:
        station = _new_item(atlas, **STATION)
        retag_media(atlas.dispatcher, targets=[str(station)])
        tags = _tags(atlas, station)
        assert list(tags) == ["Sci-Fi"]
        scifi = tags["Sci-Fi"]
        assert scifi.source == "auto" and 0.01 <= scifi.confidence < 0.99
        assert scifi.explanation.startswith("zero-shot ")
        assert scifi.explanation.endswith(
            "; below the threshold 0.99, kept as the item's most likely genre (genre floor 0.01)"
        )

        # The user's tag is a genre of the vocabulary (whatever kind it was added
        # with): the item has a genre, and the floor adds none.
        other = _new_item(
            atlas,
            title="Moon Crew",
            description="A crew of astronauts repairs a rocket on the moon.",
        )
        add_media_tags(atlas.engine, atlas.settings.feedback, str(other), ["Cookery"])
        retag_media(atlas.dispatcher, targets=[str(other)])
        assert {tag.tag: tag.source for tag in _tags(atlas, other).values()} == {"Cookery": "user"}
    finally:
        atlas.close()


def test_a_failing_item_ends_its_batch_in_error_and_the_others_are_tagged(tagger):
    station = _new_item(tagger, **STATION)
    now = utcnow()
    with tagger.engine.begin() as connection:
        empty = connection.execute(
            insert(media)
            .values(origin="file", media_type="other", created_at=now, updated_at=now)
            .returning(media.c.id)
        ).scalar_one()
    outcome = tagger.dispatcher.submit("tag", {"media_ids": [station, empty, 999999]})
    reason = (
        f"2 of 3 items failed: media {empty} has nothing to tag (no title, description or "
        "transcript); no media with id 999999"
    )
    assert outcome.status == "error" and outcome.error == reason
    with tagger.engine.connect() as connection:
        log = connection.execute(
            select(task_logs.c.status, task_logs.c.error_reason).where(
                task_logs.c.task_id == outcome.task_id
            )
        ).one()
    assert tuple(log) == ("error", reason)
    assert "Science Fiction" in _tags(tagger, station)

    # Over the whole library, an item without words is skipped, not an error.
    report = retag_media(tagger.dispatcher, all_media=True)
    by_id = {item.media_id: item for item in report.items}
    assert by_id[empty].status == "skipped" and by_id[station].status == "unchanged"
    assert report.failed_tasks == []


def test_ingest_chains_transcription_tagging_and_embedding(make_settings, media_maker):
    path = media_maker.audio(
        "station-log.mp3",
        speech="Astronauts aboard the space station repair the solar panels while orbiting "
        "the moon. Mission control sends a new rocket with supplies.",
    )
    atlas = open_atlas(make_settings(auto_process=True))
    try:
        report = ingest_paths(atlas.dispatcher, [path])
        (media_id,) = report.media_ids
        with atlas.engine.connect() as connection:
            rows = connection.execute(
                select(tasks.c.id, tasks.c.task_type, tasks.c.status, tasks.c.parent_id).order_by(
                    tasks.c.id
                )
            ).all()
            embedded = connection.scalar(
                select(func.count())
                .select_from(media_embeddings)
                .where(media_embeddings.c.media_id == media_id)
            )
        assert [(row.task_type, row.status) for row in rows] == [
            ("ingest", "completed"),
            ("transcribe", "completed"),
            ("tag", "completed"),
            ("embed", "completed"),
        ]
        assert [row.parent_id for row in rows[1:]] == [row.id for row in rows[:-1]]
        assert embedded == 1
        tags = _tags(atlas, media_id)
        assert tags and all(tag.source == "auto" for tag in tags.values())
        assert any("transcript" in (tag.explanation or "") for tag in tags.values())
    finally:
        atlas.close()


def test_the_tags_a_cutoff_holds_back_are_recorded_for_the_next_review(make_settings):
    atlas = open_atlas(make_settings(auto_process=False, **{"tagging.cutoff_min_reviews": 6}))
    try:
        station = _new_item(atlas, **STATION)
        # Six reviews: the user removes every genre Atlas showed.
        for n in range(6):
            shown = [Tag("Drama", kind="genre", source="auto", confidence=0.5)]
            _review_new_item(atlas, n, shown, keep="mine")

        report = retag_media(atlas.dispatcher, targets=[str(station)])
        assert not any(tag.kind == "genre" for tag in report.items[0].tags)
        with atlas.engine.connect() as connection:
            (item,) = load_inputs(connection, [station]).values()
            stored = connection.scalar(
                select(media_tag_inputs.c.withheld).where(media_tag_inputs.c.media_id == station)
            )
        withheld = predict_tags(atlas.settings, atlas.engine, [item])[station].withheld
        assert withheld and {p.kind for p in withheld} == {"genre"}
        assert [entry["norm"] for entry in json.loads(stored)] == [p.norm for p in withheld]

        # The user's full review says the first of them was right: that counts as kept.
        track_tag_edits(atlas.engine, atlas.settings.feedback, station, tags=withheld[0].tag)
        genres = reviewed_tags(atlas.engine, 300).kinds["genre"]
        assert sum(kept for _confidence, kept in genres) == 1
        assert len(genres) == 6 + len(withheld)
    finally:
        atlas.close()
