"""The tagger tunes itself on the library: learned from confirmed items, stored, shown, used."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from sqlalchemy import insert, select

from atlas.app import open_atlas
from atlas.db.tables import media, media_tags, tagger_tuning
from atlas.media.catalog import CatalogEntry, store_entries
from atlas.tagging import (
    current_tuning,
    load_inputs,
    predict_tags,
    retag_media,
    tuned_settings,
    tuning_of_library,
)
from atlas.tagging.selftune import MIN_ITEMS
from atlas.tagging.selftune_store import REFRESH_MIN, is_stale

pytestmark = pytest.mark.slow

#: Per genre, openings and turns that only its stories have.
THEMES = {
    "Western": (
        ["A lone cowboy", "A retired gunslinger", "A frontier sheriff", "A cattle rancher"],
        ["rides across the desert to a dusty saloon town", "faces outlaws at high noon",
         "drives the herd along the frontier trail", "hunts the bandits who robbed the stagecoach"],
    ),
    "Science Fiction": (
        ["A starship captain", "An android", "A crew of astronauts", "A space colony engineer"],
        ["travels through a wormhole to a distant galaxy", "fights alien invaders on Mars",
         "repairs the reactor of a failing spaceship", "discovers a signal from an alien planet"],
    ),
    "Horror": (
        ["A family", "A group of teenagers", "A priest", "A night nurse"],
        ["is haunted by a demon in an old mansion", "is hunted by a masked killer in the woods",
         "performs an exorcism on a possessed child", "wakes the dead in a cursed graveyard"],
    ),
    "Romance": (
        ["A young baker", "Two strangers", "A widowed florist", "A shy violinist"],
        ["falls in love on a summer holiday in Paris", "meets the love of her life at a wedding",
         "rekindles a romance with a childhood sweetheart", "writes love letters to a stranger"],
    ),
}  # fmt: skip


def themed(count_per_genre: int, *, start: int = 0) -> list[dict[str, Any]]:
    rows = []
    for genre, (who, what) in THEMES.items():
        pairs = list(itertools.product(who, what))
        for number in range(start, start + count_per_genre):
            subject, plot = pairs[number % len(pairs)]
            rows.append(
                {
                    "title": f"{genre} story {number}",
                    "description": f"{subject} {plot}. Chapter {number}.",
                    "genres": [genre],
                }
            )
    return rows


def _store(atlas, rows: list[dict[str, Any]]) -> list[int]:
    ids, _ = store_entries(atlas.engine, [CatalogEntry.model_validate(row) for row in rows])
    return list(ids)


@pytest.fixture
def open_library(make_settings):
    opened = []

    def make(**overrides: Any):
        atlas = open_atlas(make_settings(auto_process=False, **overrides))
        opened.append(atlas)
        return atlas

    yield make
    for atlas in opened:
        atlas.close()


def test_a_library_learns_its_weights_stores_them_and_the_tagger_uses_them(open_library):
    # A threshold set far too high for this library: what it learns must beat it.
    atlas = open_library(**{"tagging.threshold": 0.9, "tagging.genre_floor": 0.0})
    _store(atlas, themed(12))
    outcome = tuning_of_library(atlas.dispatcher, refresh=True)
    assert outcome is not None and outcome.ok, outcome and outcome.error
    tuning = current_tuning(atlas.settings, atlas.engine)
    assert tuning is not None
    found = tuning.learned
    assert found.status == "learned", found.reason
    assert found.items == 48 and found.genres == 4
    assert found.threshold < 0.9
    scores = found.scores
    assert scores["learned"] >= scores["prior"] + 0.01
    assert len(scores["prior_folds"]) == len(scores["learned_folds"]) == scores["folds"] == 5
    assert "folds)" in found.reason
    assert set(scores["sources"]) == {"zero_shot", "neighbours", "profiles"}
    assert "trusts" in found.reason and "cross-validated on 48 items" in found.reason

    used = tuned_settings(atlas.settings, atlas.engine).tagging
    assert used.threshold == found.threshold
    assert used.weights.model_dump() == found.weights

    (new,) = _store(
        atlas,
        [{"title": "Dust", "description": "A lone cowboy faces outlaws at high noon in town."}],
    )
    with atlas.engine.connect() as connection:
        inputs = list(load_inputs(connection, [new]).values())
    predicted = predict_tags(atlas.settings, atlas.engine, inputs)[new]
    assert "Western" in {tag.tag for tag in predicted.tags}
    # With the configured threshold (0.9) nothing of the kind would be kept.
    off = atlas.settings.model_copy(
        update={"tagging": atlas.settings.tagging.model_copy(update={"self_tune": False})}
    )
    assert not [t for t in predict_tags(off, atlas.engine, inputs)[new].tags if t.kind == "genre"]

    report = retag_media(atlas.dispatcher, targets=[str(new)])
    assert report.failed_tasks == [] and report.tuning is None  # current: not learned again
    assert "Western" in {tag.tag for tag in report.items[0].tags}


def test_the_tuning_is_learned_again_as_confirmations_grow(open_library):
    atlas = open_library()
    _store(atlas, themed(10))
    first = tuning_of_library(atlas.dispatcher)
    assert first is not None and first.ok
    assert tuning_of_library(atlas.dispatcher) is None  # current: nothing runs
    before = current_tuning(atlas.settings, atlas.engine)
    assert before is not None and before.learned.scores["confirmed_items"] == 40
    assert not is_stale(before, 40 + REFRESH_MIN - 1) and is_stale(before, 40 + REFRESH_MIN)

    added = _store(atlas, themed(3, start=10))
    untagged = _store(atlas, [{"title": "Night", "description": "A demon haunts a mansion."}])
    report = retag_media(atlas.dispatcher, targets=[str(untagged[0])])
    assert report.failed_tasks == [] and report.tuning
    after = current_tuning(atlas.settings, atlas.engine)
    assert after is not None and after.id != before.id
    assert after.learned.scores["confirmed_items"] == 40 + len(added)
    with atlas.engine.connect() as connection:
        assert len(connection.execute(select(tagger_tuning)).all()) == 1


def _learned(atlas) -> Any:
    outcome = tuning_of_library(atlas.dispatcher, refresh=True)
    assert outcome is not None and outcome.ok, outcome.error
    tuning = current_tuning(atlas.settings, atlas.engine)
    assert tuning is not None
    assert tuned_settings(atlas.settings, atlas.engine) == atlas.settings  # the prior stays
    return tuning.learned


def test_no_confirmed_items_keeps_the_prior_and_says_why(open_library):
    atlas = open_library()
    _store(atlas, [{"title": "Plain", "description": "An item nobody tagged."}])
    found = _learned(atlas)
    assert found.status == "prior" and found.reason == "no item has a confirmed genre yet"


def test_one_genre_only_keeps_the_prior_and_says_why(open_library):
    atlas = open_library()
    _store(atlas, [row for row in themed(12) if row["genres"] == ["Horror"]])
    found = _learned(atlas)
    assert found.status == "prior"
    assert found.reason == "only one genre ('horror') is confirmed: nothing tells genres apart"


def test_too_few_items_keep_the_prior(open_library):
    atlas = open_library(**{"tagging.profile_min_examples": 2})
    _store(atlas, themed(3))
    found = _learned(atlas)
    assert found.status == "prior" and f"{MIN_ITEMS} are needed" in found.reason


def test_contradictory_corrections_keep_the_prior(open_library):
    atlas = open_library()
    rows = themed(12)
    # The same stories again, each with another genre than the first time.
    names = list(THEMES)
    rows += [
        {**row, "title": row["title"] + " (again)", "genres": [names[(i + 1) % len(names)]]}
        for i, row in enumerate(themed(12))
    ]
    _store(atlas, rows)
    found = _learned(atlas)
    assert found.status == "prior" and "contradict" in found.reason


def test_a_hundred_thousand_distinct_tags_do_not_break_it(open_library):
    atlas = open_library()
    ids = _store(atlas, themed(10))
    with atlas.engine.begin() as connection:
        connection.execute(
            insert(media_tags),
            [
                {"media_id": ids[n % len(ids)], "tag": f"Tag {n}", "tag_norm": f"tag {n}",
                 "kind": "genre", "source": "user", "confidence": 1.0}
                for n in range(100_000)
            ],
        )  # fmt: skip
        assert connection.execute(select(media.c.id)).all()
    outcome = tuning_of_library(atlas.dispatcher, refresh=True)
    assert outcome is not None and outcome.ok, outcome.error
    tuning = current_tuning(atlas.settings, atlas.engine)
    assert tuning is not None and tuning.learned.reason
    assert tuning.learned.genres == 100_004


def test_media_tags_tuning_shows_what_the_library_trusts(cli, open_library):
    atlas = open_library()
    _store(atlas, themed(10))
    atlas.close()
    # Nothing stored yet: the view learns first.
    shown = cli("media-tags", "tuning")
    assert shown.exit_code == 0, shown.output
    assert "Tuning learned" in shown.output and "on 40 items with confirmed genres (4 genres)" in (
        shown.output
    )
    assert "neighbours" in shown.output and "shipped values" in shown.output
    assert "each fold apart: shipped values" in shown.output
    first = json.loads(cli("media-tags", "tuning", "--json").stdout)
    assert first["self_tune"] is True
    assert first["tuning"]["items"] == 40 and first["tuning"]["status"] in ("learned", "prior")
    assert first["tuning"]["reason"] and first["tuning"]["scores"]["folds"] == 5
    # Current: shown again, not learned again; --refresh learns anew.
    assert (
        json.loads(cli("media-tags", "tuning", "--json").stdout)["tuning"]["id"]
        == (first["tuning"]["id"])
    )
    again = json.loads(cli("media-tags", "tuning", "--refresh", "--json").stdout)
    assert again["tuning"]["id"] != first["tuning"]["id"]
