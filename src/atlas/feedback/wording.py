"""Rules and patterns in plain words, with their evidence."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["describe", "pattern_key"]


def describe(
    rule_type: str,
    condition: Mapping[str, Any],
    action: Mapping[str, Any],
    *,
    support: int,
    observed: int,
    confidence: float,
    examples: Sequence[int],
) -> str:
    """The rule in plain words with its evidence."""
    what, scope = _words(rule_type, condition, action)
    text = (
        f"{what}: {support} of {observed} {scope} (support {support}, confidence {confidence:.2f})"
    )
    if examples:
        text += "; e.g. media " + ", ".join(str(media_id) for media_id in examples[:3])
    return text


def _words(
    rule_type: str, condition: Mapping[str, Any], action: Mapping[str, Any]
) -> tuple[str, str]:
    clauses = list(condition.get("all", [condition]))
    # The situation: every clause but the tag a rule acts on (has_tag with sources,
    # lacks_tag).
    context = [
        c for c in clauses if not ("has_tag" in c and c.get("sources")) and "lacks_tag" not in c
    ]
    if rule_type == "tag_mapping":
        source = action.get("from_display") or action["from"]
        when, where = _context_words(context)
        return (
            f"'{source}' is replaced by '{action['display']}'{when}",
            f"{where} where Atlas predicted '{source}'",
        )
    if rule_type == "tag_removal":
        name = action.get("display") or action["tag"]
        when, where = _context_words(context)
        return (
            f"'{name}' is removed{when}",
            f"{where} where Atlas predicted '{name}' or you added it",
        )
    if rule_type == "tag_addition":
        when, where = _context_words(context)
        return f"'{action['display']}' is added{when or ' to every item'}", f"reviewed {where}"
    if rule_type == "genre_correction":
        old = action.get("from_display") or next(
            (c["genre"] for c in context if "genre" in c), None
        )
        return (
            f"genre '{old}' is corrected to '{action['to']}'",
            f"reviewed items whose genre was '{old}'",
        )
    if rule_type == "metadata_enhancement":
        tag = next((c["has_tag"] for c in clauses if "has_tag" in c), "?")
        return (
            f"an empty genre is set to '{action['to']}' when the item is tagged '{tag}'",
            f"reviewed items without a genre tagged '{tag}'",
        )
    when, where = _context_words(context)
    return f"{where} are moved to {action['folder']}", f"moved {where}"


def _context_words(clauses: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(' when ...' for the action, 'items ...' they act on) for the context clauses."""
    kinds, conditions, wheres, tags, noun = [], [], [], [], "items"
    for clause in clauses:
        if "media_type" in clause:
            kinds.append(f" for {clause['media_type']} items")
            noun = f"{clause['media_type']} items"
        elif "in_folder" in clause:
            kinds.append(f" in folder {clause['in_folder']}")
            wheres.append(f" in folder {clause['in_folder']}")
        elif "has_tag" in clause:
            tags.append(f"'{clause['has_tag']}'")
        elif clause.get("genre") is not None:
            conditions.append(f"the genre is '{clause['genre']}'")
            wheres.append(f" with genre '{clause['genre']}'")
        elif "word" in clause:
            conditions.append(f"the text mentions '{clause['word']}'")
            wheres.append(f" whose text mentions '{clause['word']}'")
    if tags:
        named = " and ".join(tags)
        conditions.insert(0, f"the item is tagged {named}")
        wheres.insert(0, f" tagged {named}")
    when = "".join(kinds) + (" when " + " and ".join(conditions) if conditions else "")
    return when, noun + "".join(wheres)


def pattern_key(*parts: Any) -> str:
    """A stable fingerprint of what a pattern is about (not of its evidence)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
