"""Rules are checked on the user's own reviewed items before they act."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from _feedback import add_item, tag_new_item, tags_of
from atlas.db.tables import rule_applications
from atlas.feedback import list_rules, mine_patterns, run_feedback_loop, track_tag_edits

pytestmark = pytest.mark.small_feedback


def _correct(atlas, item, tags):
    return track_tag_edits(atlas.engine, atlas.settings.feedback, item, tags=tags)


def _loop(atlas):
    return run_feedback_loop(atlas.engine, atlas.settings.feedback)


def _test_tone_library(atlas):
    """25 audio files whose automatic 'Music' the user corrected to 'Test Tone', and 40
    video clips the user never touched (some of them also predicted 'Music')."""
    corrected = []
    for n in range(25):
        item = add_item(atlas.engine, f"tone {n}", auto=["Music"], media_type="audio")
        _correct(atlas, item, "Test Tone")
        corrected.append(item)
    clips = []
    for n, genre in enumerate(["Action", "Documentary", "Thriller", "Documentary"] * 10):
        auto = ["Music", f"scene{n}"] if n % 3 == 0 else [f"scene{n}", "outdoors"]
        clips.append(add_item(atlas.engine, f"clip {n}", auto=auto, genre=genre))
    return corrected, clips


def test_test_tone_rules_never_act_outside_their_evidence(atlas):
    _corrected, clips = _test_tone_library(atlas)
    before = {clip: tags_of(atlas.engine, clip) for clip in clips}

    report = _loop(atlas)

    rules = [rule for rule in list_rules(atlas.engine) if rule.enabled]
    assert rules, "the corrections must make a rule"
    # No rule adds 'Test Tone' everywhere: every hit had 'Music' predicted on an audio file.
    for rule in rules:
        assert "to every item" not in rule.description, rule.description
        assert {"media_type": "audio"} in rule.condition["all"], rule.condition
    with atlas.engine.connect() as connection:
        touched = set(connection.scalars(select(rule_applications.c.media_id)))
    assert not touched & set(clips)
    assert {clip: tags_of(atlas.engine, clip) for clip in clips} == before
    assert report.applied is not None and not report.applied.applications

    # Where the evidence is (a new audio file predicted 'Music'), the rule acts at tagging time.
    new_tone = add_item(atlas.engine, "tone new", media_type="audio")
    applied = tag_new_item(atlas.engine, new_tone, ["Music"])
    assert [(tag.tag, tag.source) for tag in applied.tags] == [("Test Tone", "rule")]
    # ... and not on a new video clip predicted 'Music'.
    new_clip = add_item(atlas.engine, "clip new", genre="Action")
    applied = tag_new_item(atlas.engine, new_clip, ["Music", "car chase"])
    assert not applied.applications
    assert tags_of(atlas.engine, new_clip) == {"Music": "auto", "car chase": "auto"}


def _favourites(atlas, every):
    """20 reviewed films; the user adds 'favourite' to every ``every``-th one."""
    for n in range(20):
        item = add_item(atlas.engine, f"film {n}", auto=[f"topic{n}"])
        _correct(atlas, item, f"topic{n}, favourite" if n % every == 0 else f"topic{n}")
    with atlas.engine.connect() as connection:
        return mine_patterns(connection, atlas.settings.feedback, min_confidence=0.5)


def test_an_addition_for_every_item_needs_the_tag_on_most_reviewed_items(atlas):
    # Added to 7 of 20 reviewed items, in no particular context: no rule.
    result = _favourites(atlas, 3)
    assert not [p for p in result.qualifying if p.action.get("tag") == "favourite"]


def test_an_addition_on_most_reviewed_items_is_kept_to_their_kind(atlas):
    # Added to all 20: a rule, but only for the kind of items it was seen on (videos).
    result = _favourites(atlas, 1)
    found = [p for p in result.qualifying if p.action.get("tag") == "favourite"]
    (pattern,) = found
    assert pattern.condition["all"] == [{"media_type": "video"}, {"lacks_tag": "favourite"}]
    assert "for video items" in pattern.description


def test_contradictory_corrections_make_no_rule_and_atlas_says_so(atlas):
    # On documentaries the user adds 'archive footage' to some and removes it from others.
    for n in range(5):
        item = add_item(atlas.engine, f"doc a{n}", auto=[f"topic{n}"], genre="Documentary")
        _correct(atlas, item, f"topic{n}, archive footage")
    for n in range(5):
        item = add_item(
            atlas.engine, f"doc b{n}", auto=["archive footage", f"subject{n}"], genre="Documentary"
        )
        _correct(atlas, item, f"subject{n}")

    report = _loop(atlas)

    assert report.mining is not None
    assert not [
        rule
        for rule in list_rules(atlas.engine)
        if "archive footage" in (rule.action.get("tag"), rule.action.get("to"))
    ]
    assert any(
        "'archive footage'" in line and "added on 5" in line and "removed on 5" in line
        for line in report.mining.contradictions
    ), report.mining.contradictions
    assert any("no rule" in line for line in report.mining.contradictions)


def test_the_loop_command_says_what_it_could_not_learn(atlas, cli):
    for n in range(4):
        item = add_item(atlas.engine, f"doc a{n}", auto=[f"topic{n}"], genre="Documentary")
        _correct(atlas, item, f"topic{n}, archive footage")
        item = add_item(
            atlas.engine, f"doc b{n}", auto=["archive footage", f"subject{n}"], genre="Documentary"
        )
        _correct(atlas, item, f"subject{n}")

    result = cli("run-feedback-loop", "--analyze-only")

    assert result.exit_code == 0, result.output
    assert (
        "not learned: 'archive footage' was added on 4 and removed on 4 reviewed items of the "
        "same kind (video items, genre 'documentary'): contradictory corrections, no rule made "
        "either way"
    ) in result.stdout


def test_a_rule_whose_corrections_turn_contradictory_is_disabled_and_says_why(atlas):
    for n in range(6):
        item = add_item(atlas.engine, f"doc a{n}", auto=[f"topic{n}"], genre="Documentary")
        _correct(atlas, item, f"topic{n}, archive footage")
    _loop(atlas)
    (rule,) = [r for r in list_rules(atlas.engine) if r.action.get("tag") == "archive footage"]
    assert rule.enabled and rule.rule_type == "tag_addition"

    for n in range(6):
        item = add_item(
            atlas.engine, f"doc b{n}", auto=["archive footage", f"subject{n}"], genre="Documentary"
        )
        _correct(atlas, item, f"subject{n}")
    _loop(atlas)

    (rule,) = [r for r in list_rules(atlas.engine) if r.id == rule.id]
    assert not rule.enabled and rule.disabled_by == "evidence"
    assert "contradict" in (rule.disabled_reason or "")
