"""The whole loop: corrections -> rules -> applied to new and stored items -> judged -> undone."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from _feedback import add_item, feedback_rows, snapshot, tag_new_item, tags_of
from atlas.db.tables import learning_rules, media, rule_applications, task_logs
from atlas.feedback import list_rules, run_feedback_loop, track_tag_edits
from atlas.tagging.cutoffs import NEVER, learned_cutoffs

pytestmark = pytest.mark.small_feedback


def _correct(atlas, item, tags=None, **kwargs):
    return track_tag_edits(atlas.engine, atlas.settings.feedback, item, tags=tags, **kwargs)


def _teach_scifi(atlas, count=4):
    """The user replaces Atlas's 'sci-fi' by 'science fiction' on ``count`` items."""
    for n in range(count):
        item = add_item(atlas.engine, f"Taught {n}", auto=["sci-fi", f"extra{n}"])
        _correct(atlas, item, f"Science Fiction, extra{n}")


def _rule(atlas, rule_type="tag_mapping"):
    (rule,) = [r for r in list_rules(atlas.engine) if r.rule_type == rule_type]
    return rule


def test_corrections_become_a_rule_that_rewrites_the_next_predictions(atlas, cli):
    _teach_scifi(atlas)
    result = cli("run-feedback-loop")
    assert result.exit_code == 0, result.output
    assert (
        "rule 1 tag_mapping: 'sci-fi' is replaced by 'Science Fiction' for video items: 4 of 4 "
        "video items where Atlas predicted 'sci-fi' (support 4, confidence 0.83); "
        "e.g. media 1, 2, 3"
    ) in result.stdout

    new = add_item(atlas.engine, "Brand new")
    applied = tag_new_item(atlas.engine, new, ["sci-fi", "robots"])
    assert sorted((t.tag, t.source) for t in applied.tags) == [
        ("Science Fiction", "rule"),
        ("robots", "auto"),
    ]
    assert tags_of(atlas.engine, new) == {"Science Fiction": "rule", "robots": "auto"}
    (application,) = applied.applications
    assert application.summary() == "- sci-fi, + Science Fiction"
    assert application.via == "tagger" and application.outcome == "pending"
    assert _rule(atlas).usage_count == 1

    # Tagging the same item again does not count the same application twice.
    tag_new_item(atlas.engine, new, ["sci-fi", "robots"])
    assert _rule(atlas).usage_count == 1
    assert tags_of(atlas.engine, new) == {"Science Fiction": "rule", "robots": "auto"}


def test_rules_apply_to_stored_automatic_tags_but_never_to_user_tags_or_rejected_ones(atlas, cli):
    _teach_scifi(atlas)
    cli("run-feedback-loop", "--analyze-only")
    assert list_rules(atlas.engine) == []  # analysing creates nothing

    pending = add_item(atlas.engine, "Unreviewed", auto=["sci-fi", "space"])
    by_user = add_item(atlas.engine, "Set by the user", user=["sci-fi"])
    refused = add_item(atlas.engine, "Refused", auto=["sci-fi", "science fiction"])
    _correct(atlas, refused, "space")  # removes (and rejects) both
    with atlas.engine.begin() as connection:  # the tagger predicts sci-fi again
        from atlas.media.tags import Tag, upsert_tags

        upsert_tags(connection, refused, [Tag("sci-fi", source="auto")])
    # 'sci-fi' was rejected on 'Refused', so the tagger's own hook would drop it;
    # here it was stored behind Atlas's back, and the rule must still not add the
    # rejected 'science fiction'.
    result = cli("run-feedback-loop")
    assert result.exit_code == 0, result.output
    assert tags_of(atlas.engine, pending) == {"Science Fiction": "rule", "space": "auto"}
    assert tags_of(atlas.engine, by_user) == {"sci-fi": "user"}
    assert "science fiction" not in {t.casefold() for t in tags_of(atlas.engine, refused)}
    assert f"media {pending} 'Unreviewed': - sci-fi, + Science Fiction (rule 1)" in result.stdout

    # Idempotent: a second run changes nothing more.
    before = snapshot(atlas.engine)
    again = cli("run-feedback-loop", "--apply-rules")
    assert again.exit_code == 0, again.output
    assert "changed 0 of" in again.stdout
    assert snapshot(atlas.engine) == before


def test_user_edits_judge_applications_and_a_failing_rule_is_disabled(atlas, cli):
    _teach_scifi(atlas)
    run_feedback_loop(atlas.engine, atlas.settings.feedback)
    items = []
    for n in range(5):
        item = add_item(atlas.engine, f"New {n}")
        tag_new_item(atlas.engine, item, ["sci-fi", f"tag{n}"])
        items.append(item)

    # The user keeps the rule's result once...
    report = _correct(atlas, items[0], f"Science Fiction, tag{items[0]}, tag0")
    assert [j.outcome for j in report.judged] == ["kept"]
    rule = _rule(atlas)
    assert (rule.success_count, rule.failure_count, rule.success_rate) == (1, 0, 1.0)
    # ...and reverses it four times (re-adding what the rule removed counts too).
    for n, item in enumerate(items[1:], start=1):
        report = _correct(atlas, item, f"sci-fi, tag{n}")
        assert [j.outcome for j in report.judged] == ["reverted"]
    rule = _rule(atlas)
    assert (rule.success_count, rule.failure_count) == (1, 4)
    assert rule.success_rate == 0.2 and rule.usage_count == 5
    assert not rule.enabled and rule.disabled_by == "judge"
    assert rule.disabled_reason == (
        "disabled automatically: only 1 of 5 judged applications were kept "
        "(success rate 0.20 < 0.50)"
    )

    listed = cli("rules", "list")
    assert "off (judge)" in listed.stdout and "1/5" in listed.stdout
    shown = cli("rules", "show", str(rule.id))
    assert f"why off: {rule.disabled_reason}" in shown.stdout
    assert "judged 5: 1 kept, 4 reverted (success rate 0.20)" in shown.stdout
    loop = cli("run-feedback-loop")
    assert f"rule {rule.id} (tag_mapping) is off: {rule.disabled_reason}" in loop.stdout

    # A disabled rule no longer acts, and mining does not switch it back on.
    late = add_item(atlas.engine, "Late")
    assert [t.tag for t in tag_new_item(atlas.engine, late, ["sci-fi"]).tags] == ["sci-fi"]
    assert not _rule(atlas).enabled


def test_a_single_tag_edit_judges_too(atlas):
    _teach_scifi(atlas)
    run_feedback_loop(atlas.engine, atlas.settings.feedback)
    item = add_item(atlas.engine, "New")
    tag_new_item(atlas.engine, item, ["sci-fi", "robots"])
    from atlas.feedback import remove_user_tags

    report = remove_user_tags(atlas.engine, atlas.settings.feedback, item, "Science Fiction")
    assert [j.outcome for j in report.judged] == ["reverted"]
    original = feedback_rows(atlas.engine, item)[-1]["original_value"]
    # The row says what the rule did, so mining can see what Atlas predicted.
    assert original["rules"]["added"] == ["science fiction"]
    assert [t["norm"] for t in original["rules"]["removed"]] == ["sci-fi"]


def test_undo_restores_the_item_and_refuses_when_it_changed_since(atlas, cli):
    _teach_scifi(atlas)
    first = add_item(atlas.engine, "First", auto=["sci-fi"])
    second = add_item(atlas.engine, "Second", auto=["sci-fi"])
    run_feedback_loop(atlas.engine, atlas.settings.feedback)
    with atlas.engine.connect() as connection:
        applications = dict(
            connection.execute(select(rule_applications.c.media_id, rule_applications.c.id)).all()
        )

    result = cli("rules", "undo", str(applications[first]))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"undid application {applications[first]} of rule 1 on media {first}: "
        "- sci-fi, + Science Fiction"
    )
    # What the user asked back is theirs now; the rule's tag is rejected there.
    assert tags_of(atlas.engine, first) == {"sci-fi": "user"}
    assert _rule(atlas).failure_count == 1
    again = cli("rules", "undo", str(applications[first]))
    assert again.exit_code == 4
    assert again.stderr.strip() == (
        f"atlas: application {applications[first]} was already undone; nothing to undo"
    )
    # Undone means the rules leave this item alone from now on.
    run_feedback_loop(atlas.engine, atlas.settings.feedback, mode="apply")
    tag_new_item(atlas.engine, first, ["sci-fi", "science fiction"])
    assert tags_of(atlas.engine, first) == {"sci-fi": "user"}

    _correct(atlas, second, "Science Fiction, robots")  # now the user's tag
    changed = cli("rules", "undo", str(applications[second]))
    assert changed.exit_code == 4
    assert changed.stderr.strip() == (
        f"atlas: media {second} has changed since rule 1 was applied: tag 'Science Fiction' "
        "is now set by source 'user'; nothing was undone"
    )
    assert tags_of(atlas.engine, second) == {"Science Fiction": "user", "robots": "user"}

    unknown = cli("rules", "undo", "999")
    assert unknown.exit_code == 3
    assert unknown.stderr.strip() == (
        "atlas: no rule application with id 999; see: atlas rules applications"
    )
    listed = cli("rules", "applications", "--json")
    assert {a["outcome"] for a in json.loads(listed.stdout)} == {"reverted", "kept"}


def test_dry_run_shows_exactly_what_would_change_and_changes_nothing(atlas, cli):
    _teach_scifi(atlas)
    item = add_item(atlas.engine, "Pending", auto=["sci-fi", "space"])
    before = snapshot(atlas.engine)
    result = cli("run-feedback-loop", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert snapshot(atlas.engine) == before
    planned = json.loads(result.stdout)
    assert planned["rules"]["created"][0]["description"].startswith(
        "'sci-fi' is replaced by 'Science Fiction'"
    )
    assert [(a["media_id"], a["change"]) for a in planned["applied"]["applications"]] == [
        (item, "- sci-fi, + Science Fiction")
    ]
    text = cli("run-feedback-loop", "--dry-run")
    assert text.stdout.startswith("dry run: nothing was changed")
    assert f"media {item} 'Pending': - sci-fi, + Science Fiction (new rule)" in text.stdout
    assert snapshot(atlas.engine) == before

    done = json.loads(cli("run-feedback-loop", "--json").stdout)
    assert [(a["media_id"], a["change"]) for a in done["applied"]["applications"]] == [
        (item, "- sci-fi, + Science Fiction")
    ]


def test_rerunning_updates_rules_instead_of_adding_twins(atlas):
    _teach_scifi(atlas, count=3)
    run_feedback_loop(atlas.engine, atlas.settings.feedback)
    first = _rule(atlas)
    assert first.support == 3
    _teach_scifi(atlas, count=2)
    report = run_feedback_loop(atlas.engine, atlas.settings.feedback)
    assert first.id in [r.id for r in report.changes.updated]
    assert report.changes.created == []
    listed = len(list_rules(atlas.engine))
    with atlas.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(learning_rules)) == listed
    assert _rule(atlas).id == first.id and _rule(atlas).support == 5


def test_a_rule_the_feedback_no_longer_supports_is_disabled_and_returns_with_it(atlas):
    _teach_scifi(atlas, count=3)
    run_feedback_loop(atlas.engine, atlas.settings.feedback)
    for n in range(3):  # the user now keeps 'sci-fi' as Atlas predicts it
        item = add_item(atlas.engine, f"Kept {n}", auto=["sci-fi"])
        _correct(atlas, item, "sci-fi")
    report = run_feedback_loop(atlas.engine, atlas.settings.feedback)
    (disabled,) = [r for r in report.changes.disabled if r.rule_type == "tag_mapping"]
    assert disabled.disabled_by == "evidence"
    assert disabled.disabled_reason == (
        "the feedback no longer supports it (fewer than 3 corrections, or a confidence under 0.60)"
    )
    _teach_scifi(atlas, count=4)
    report = run_feedback_loop(atlas.engine, atlas.settings.feedback)
    assert [r.id for r in report.changes.reenabled if r.rule_type == "tag_mapping"] == [disabled.id]
    assert _rule(atlas).enabled


def test_rules_can_be_switched_off_and_on_by_hand(atlas, cli):
    _teach_scifi(atlas)
    run_feedback_loop(atlas.engine, atlas.settings.feedback)
    off = cli("rules", "disable", "1", "--reason", "I like sci-fi after all")
    assert off.exit_code == 0, off.output
    item = add_item(atlas.engine, "New")
    applied = tag_new_item(atlas.engine, item, ["sci-fi"]).applications
    assert applied and 1 not in [a.rule_id for a in applied]  # other rules still act
    run_feedback_loop(atlas.engine, atlas.settings.feedback)  # stays off
    assert _rule(atlas).disabled_reason == "I like sci-fi after all"
    on = cli("rules", "enable", "1", "--json")
    assert json.loads(on.stdout)["enabled"] is True
    missing = cli("rules", "show", "42")
    assert missing.exit_code == 3
    assert missing.stderr.strip() == "atlas: no rule with id 42; see: atlas rules list"


def test_genre_rules_fix_automatic_genres_only(atlas):
    for n in range(3):
        item = add_item(atlas.engine, f"S{n}", genre="Sci-Fi")
        _correct(atlas, item, genre="Science Fiction")
    automatic = add_item(atlas.engine, "From container tags", genre="sci-fi")
    user_set = add_item(atlas.engine, "User said so", genre="Drama")
    _correct(atlas, user_set, genre="Sci-Fi")
    report = run_feedback_loop(atlas.engine, atlas.settings.feedback)
    assert [a.summary() for a in report.applied.applications] == [
        "genre 'sci-fi' -> 'Science Fiction'"
    ]
    with atlas.engine.connect() as connection:
        genres = dict(connection.execute(select(media.c.id, media.c.genre)).all())
    assert genres[automatic] == "Science Fiction" and genres[user_set] == "Sci-Fi"
    judged = _correct(atlas, automatic, genre="Science fiction").judged
    assert [j.outcome for j in judged] == ["kept"]


def test_the_loop_runs_as_a_logged_task_and_refuses_contradicting_flags(atlas, cli):
    bad = cli("run-feedback-loop", "--analyze-only", "--apply-rules")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "atlas: --analyze-only and --apply-rules exclude each other"
    zero = cli("run-feedback-loop", "--min-frequency", "0")
    assert zero.stderr.strip() == "atlas: --min-frequency must be at least 1, got 0"
    with atlas.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(task_logs)) == 0
    ok = cli("run-feedback-loop", "--analyze-only", "--min-frequency", "2")
    assert ok.exit_code == 0, ok.output
    with atlas.engine.connect() as connection:
        logs = connection.execute(select(task_logs.c.task_type, task_logs.c.status)).all()
    assert [tuple(row) for row in logs] == [("feedback-loop", "completed")]


def test_tags_a_rule_takes_away_are_not_evidence_about_their_kind(atlas):
    # Atlas's 'sci-fi' is always replaced; its 'drama' is kept on 4 of 6 items.
    for n in range(6):
        item = add_item(atlas.engine, f"Film {n}", auto=["sci-fi", "drama"])
        _correct(atlas, item, "Science Fiction, drama" if n < 4 else "Science Fiction")
    config = atlas.settings.tagging.model_copy(update={"cutoff_min_reviews": 6})

    # 4 kept of 12 reviewed topics: nothing pays, so no new topic would be proposed.
    assert learned_cutoffs(config, atlas.engine).level("western", "topic") == NEVER
    run_feedback_loop(atlas.engine, atlas.settings.feedback)
    assert _rule(atlas).takes_away == "sci-fi"
    # The rule answers for 'sci-fi': 4 of the 6 other topics were kept, so they are shown.
    cutoffs = learned_cutoffs(config, atlas.engine)
    assert cutoffs.level("western", "topic") == config.threshold
    assert cutoffs.kinds["topic"].reviewed == 6


def test_tags_a_cutoff_held_back_are_judged_by_the_next_full_review(atlas):
    import numpy as np

    from atlas.db import utcnow
    from atlas.tagging.inputs import mark_tagged

    config = atlas.settings.tagging.model_copy(update={"cutoff_min_reviews": 6})
    # Six reviews: the user removes every topic Atlas showed.
    for n in range(6):
        item = add_item(atlas.engine, f"Old {n}", auto=[f"t{n}"])
        _correct(atlas, item, "x")
    assert learned_cutoffs(config, atlas.engine).kinds["topic"].never

    # Since then the tagger held back a topic on each new item; the user adds four of them.
    for n in range(6):
        item = add_item(atlas.engine, f"New {n}")
        with atlas.engine.begin() as connection:
            mark_tagged(
                connection,
                item,
                model_id="test",
                text_hash="h",
                vector=np.ones(4, dtype=np.float32),
                hash_of_input="i",
                now=utcnow(),
                withheld=[{"tag": f"W{n}", "norm": f"w{n}", "kind": "topic", "confidence": 0.7}],
            )
        _correct(atlas, item, f"W{n}, x" if n < 4 else "x")

    (review,) = feedback_rows(atlas.engine, item)
    assert review["original_value"]["withheld"] == [
        {"tag": "W5", "norm": "w5", "kind": "topic", "confidence": 0.7}
    ]
    # 4 of the 6 held back would have been kept, at a confidence over the removed ones.
    topics = learned_cutoffs(config, atlas.engine).kinds["topic"]
    assert (topics.reviewed, topics.kept) == (12, 4)
    assert topics.cutoff == 0.7 and not topics.never

    # One review judges them: a second review of the same item does not count them again.
    _correct(atlas, item, "x, y")
    assert "withheld" not in feedback_rows(atlas.engine, item)[-1]["original_value"]
    assert learned_cutoffs(config, atlas.engine).kinds["topic"].reviewed == 12
