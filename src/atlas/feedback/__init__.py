"""Learning from the user's corrections: feedback, patterns, rules, and their judgement.

The user's edits are recorded as feedback (:mod:`~atlas.feedback.tracking`,
:mod:`~atlas.feedback.moves`). Mining reads it once
(:mod:`~atlas.feedback.observations`), counts it on sparse matrices
(:mod:`~atlas.feedback.sparse`) and finds tag, genre and file patterns
(:mod:`~atlas.feedback.tag_patterns`, :mod:`~atlas.feedback.genre_patterns`,
:mod:`~atlas.feedback.patterns`); each would-be rule is checked on the reviewed
items first (:mod:`~atlas.feedback.evidence`). Patterns become rules
(:mod:`~atlas.feedback.rules`, stored by :mod:`~atlas.feedback.rule_store`, put in
words by :mod:`~atlas.feedback.wording`) that a small engine evaluates
(:mod:`~atlas.feedback.engine`). Rules act on new predictions
(:mod:`~atlas.feedback.apply`) and stored items (:mod:`~atlas.feedback.library`),
each action recorded (:mod:`~atlas.feedback.applications`), judged by the user's
next edit (:mod:`~atlas.feedback.judging`), undoable (:mod:`~atlas.feedback.undo`)
and listed (:mod:`~atlas.feedback.listing`); :mod:`~atlas.feedback.loop` runs the
whole cycle.

For the automatic tagger: call :func:`apply_rules` with each new prediction set,
inside the transaction that stores the tags, and store the tags it returns.
"""

from atlas.feedback.applications import Application, RuleResult
from atlas.feedback.apply import apply_rules, tag_rule_index
from atlas.feedback.context import MediaContext, load_contexts
from atlas.feedback.engine import RuleIndex, evaluate
from atlas.feedback.judging import Judgement, judge_edit
from atlas.feedback.library import ApplyReport, apply_to_library
from atlas.feedback.listing import RuleDetail, list_applications, rule_detail
from atlas.feedback.loop import LoopReport, feedback_loop, loop_mode, run_feedback_loop
from atlas.feedback.moves import MoveReport, move_media
from atlas.feedback.patterns import MiningResult, Pattern, mine_patterns
from atlas.feedback.records import rejected_norms
from atlas.feedback.rule_store import RuleChanges, get_rule, list_rules, set_rule_enabled
from atlas.feedback.rules import RULE_TYPES, Rule, validate_rule
from atlas.feedback.tracking import (
    EditReport,
    ValueChange,
    add_user_tags,
    edit_metadata,
    remove_user_tags,
    track_tag_edits,
)
from atlas.feedback.undo import UndoReport, undo_application

__all__ = [
    "RULE_TYPES",
    "Application",
    "ApplyReport",
    "EditReport",
    "Judgement",
    "LoopReport",
    "MediaContext",
    "MiningResult",
    "MoveReport",
    "Pattern",
    "Rule",
    "RuleChanges",
    "RuleDetail",
    "RuleIndex",
    "RuleResult",
    "UndoReport",
    "ValueChange",
    "add_user_tags",
    "apply_rules",
    "apply_to_library",
    "edit_metadata",
    "evaluate",
    "feedback_loop",
    "get_rule",
    "judge_edit",
    "list_applications",
    "list_rules",
    "load_contexts",
    "loop_mode",
    "mine_patterns",
    "move_media",
    "rejected_norms",
    "remove_user_tags",
    "rule_detail",
    "run_feedback_loop",
    "set_rule_enabled",
    "tag_rule_index",
    "track_tag_edits",
    "undo_application",
    "validate_rule",
]
