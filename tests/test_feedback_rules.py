"""The rule engine on its own: conditions, validation, the order and limits of tag effects."""

from __future__ import annotations

import pytest

from atlas.errors import InvalidInput
from atlas.feedback import MediaContext, Rule, RuleIndex, evaluate, validate_rule
from atlas.feedback.engine import plan_tag_effects
from atlas.media.tags import Tag


def _tags(**sources):
    return {norm: Tag(norm, source=source) for norm, source in sources.items()}


def _context(**kwargs):
    defaults = {"media_id": 1, "media_type": "video", "genre": "Horror", "path": "/l/x/a.mp4"}
    return MediaContext(**{**defaults, **kwargs})


def _rule(rule_id, rule_type, condition, action, confidence=0.9):
    validate_rule(rule_type, condition, action)
    return Rule(
        id=rule_id,
        rule_type=rule_type,
        condition=condition,
        action=action,
        confidence=confidence,
        support=3,
    )


def test_conditions_test_tags_genre_type_folder_and_words():
    context = _context(words=frozenset({"dragon"}))
    tags = _tags(alien="auto", space="user")
    assert evaluate({"has_tag": "alien", "sources": ["auto"]}, context, tags)
    assert not evaluate({"has_tag": "space", "sources": ["auto"]}, context, tags)
    assert evaluate({"has_tag": "space"}, context, tags)
    assert evaluate({"lacks_tag": "robots"}, context, tags)
    assert evaluate({"genre": "horror"}, context, tags)
    assert evaluate({"genre": None}, _context(genre=None), tags)
    assert evaluate({"media_type": "video"}, context, tags)
    assert evaluate({"in_folder": "/l/x"}, context, tags)
    assert not evaluate({"in_folder": "/l"}, context, tags)
    assert evaluate({"word": "dragon"}, context, tags)
    assert evaluate(
        {
            "all": [
                {"genre": "horror"},
                {"any": [{"word": "ghost"}, {"not": {"lacks_tag": "alien"}}]},
            ]
        },
        context,
        tags,
    )


@pytest.mark.parametrize(
    ("rule_type", "condition", "action", "message"),
    [
        ("tag_magic", {"word": "x"}, {"op": "add_tag"}, "unknown rule type 'tag_magic'"),
        (
            "tag_addition",
            {"colour": "red"},
            {"op": "add_tag", "tag": "a", "display": "a"},
            'unknown rule condition {"colour": "red"}',
        ),
        (
            "tag_addition",
            {"all": {"word": "x"}},
            {"op": "add_tag", "tag": "a", "display": "a"},
            "'all' and 'any' take a list of conditions",
        ),
        (
            "tag_removal",
            {"word": "x"},
            {"op": "add_tag", "tag": "a"},
            "a tag_removal rule needs the action op 'remove_tag'",
        ),
        (
            "tag_mapping",
            {"word": "x"},
            {"op": "replace_tag", "from": "a", "display": "b"},
            "the action 'replace_tag' needs a non-empty 'to'",
        ),
        (
            "tag_addition",
            {"word": 3},
            {"op": "add_tag", "tag": "a", "display": "a"},
            "the condition 'word' needs a text value",
        ),
    ],
)
def test_malformed_rules_are_refused(rule_type, condition, action, message):
    with pytest.raises(InvalidInput) as caught:
        validate_rule(rule_type, condition, action)
    assert caught.value.message == message


def test_rules_change_only_automatic_tags_in_order_and_respect_rejections_and_reversals():
    mapping = _rule(
        1,
        "tag_mapping",
        {"all": [{"has_tag": "sci-fi", "sources": ["auto"]}]},
        {
            "op": "replace_tag",
            "from": "sci-fi",
            "to": "science fiction",
            "display": "Science Fiction",
        },
    )
    removal = _rule(
        2,
        "tag_removal",
        {"all": [{"has_tag": "sci-fi", "sources": ["auto"]}]},
        {"op": "remove_tag", "tag": "sci-fi"},
    )
    addition = _rule(
        3,
        "tag_addition",
        {"all": [{"has_tag": "sci-fi"}, {"lacks_tag": "space"}]},
        {"op": "add_tag", "tag": "space", "display": "Space", "kind": "keyword"},
    )
    index = RuleIndex([addition, removal, mapping])
    tags = _tags(**{"sci-fi": "auto", "drama": "auto"})

    effects = plan_tag_effects(index, _context(), tags)
    # The mapping acts first; the removal then has nothing left to remove; the
    # addition's context (tagged sci-fi, as predicted) still holds.
    assert [
        (e.rule.id, [s.norm for s in e.removed], [s.norm for s in e.added]) for e in effects
    ] == [
        (1, ["sci-fi"], ["science fiction"]),
        (3, [], ["space"]),
    ]
    assert effects[1].added[0].source == "rule" and effects[1].added[0].kind == "keyword"

    # A user's tag is never changed, a rejected tag never added, a reversed rule skipped.
    assert plan_tag_effects(index, _context(), _tags(**{"sci-fi": "user"}))[0].rule.id == 3
    rejected = _context(rejected=frozenset({"science fiction", "space"}))
    assert [e.rule.id for e in plan_tag_effects(index, rejected, tags)] == [2]
    assert [e.rule.id for e in plan_tag_effects(index, _context(), tags, blocked={1})] == [2, 3]
    # A disabled rule is not in the index at all.
    mapping.enabled = False
    assert [e.rule.id for e in plan_tag_effects(RuleIndex([mapping]), _context(), tags)] == []


def test_a_rule_takes_a_tag_away_when_its_only_condition_is_the_tag():
    alone = {"all": [{"has_tag": "sci-fi", "sources": ["auto"]}]}
    in_docs = {"all": [{"has_tag": "sci-fi", "sources": ["auto"]}, {"genre": "documentary"}]}
    removal = {"op": "remove_tag", "tag": "sci-fi"}
    mapping = {"op": "replace_tag", "from": "sci-fi", "to": "science fiction", "display": "SF"}
    addition = {"all": [{"lacks_tag": "space"}]}
    assert _rule(1, "tag_removal", alone, removal).takes_away == "sci-fi"
    assert _rule(2, "tag_mapping", alone, mapping).takes_away == "sci-fi"
    assert _rule(3, "tag_removal", in_docs, removal).takes_away is None
    add = {"op": "add_tag", "tag": "space", "display": "space"}
    assert _rule(4, "tag_addition", addition, add).takes_away is None
