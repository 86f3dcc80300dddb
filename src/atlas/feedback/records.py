"""How feedback is stored: the JSON layouts of ``user_feedback`` values, and tag rejections.

``user_feedback.original_value`` / ``corrected_value`` by ``feedback_type``:

``tag_correction`` (one row per edit of an item's tags)
    original: ``{"tags": [TAG, ...], "rules": {"added": [NORM, ...], "removed": [TAG, ...]}}``
    where TAG is ``{"tag", "norm", "kind", "source", "confidence"}``: every tag the item
    had, with its source (``auto``/``rule``/``user``). ``rules.added`` names the tags that
    learned rules put there, ``rules.removed`` the predictions that rules took away, so
    mining can see what Atlas predicted before its rules acted.
    corrected: ``{"tags": [DISPLAY, ...], "added": [...], "removed": [...],
    "replaced": [[REMOVED, ADDED], ...], "confirmed": [...], "scope": SCOPE}``: the tag
    set after the edit; what was added, removed, which removed tag each added one
    replaced (pairs by spelling similarity, or the one-for-one swap), which automatic
    tags the user kept (they become ``user`` tags). SCOPE is ``set`` (the user gave the
    full set, ``track-tag-edits --tags``), ``add`` / ``remove`` (single edits) or
    ``undo`` (``rules undo``).
``metadata_edit`` / ``rating``
    ``{"field": NAME, "value": OLD}`` -> ``{"field": NAME, "value": NEW}``.
``file_move``
    the old and the new absolute path, as plain text (ingest writes the same when it
    finds known content at a new path, with ``source`` ``ingest``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from atlas.db.tables import media_tag_rejections, user_feedback
from atlas.media.tags import Tag, normalise_tag

_WORDS = re.compile(r"[\s\-_/&.]+")

__all__ = [
    "clear_rejections",
    "insert_feedback",
    "pair_replacements",
    "reject_tags",
    "rejected_norms",
    "tag_values",
]


def insert_feedback(
    connection: Connection,
    media_id: int,
    feedback_type: str,
    original: Any,
    corrected: Any,
    *,
    confidence: float,
    source: str,
    now: datetime,
) -> int:
    """Insert one ``user_feedback`` row; dicts are stored as JSON. Returns its id."""
    return int(
        connection.execute(
            insert(user_feedback)
            .values(
                media_id=media_id,
                feedback_type=feedback_type,
                original_value=_text(original),
                corrected_value=_text(corrected),
                confidence_score=confidence,
                timestamp=now,
                source=source,
            )
            .returning(user_feedback.c.id)
        ).scalar_one()
    )


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def tag_values(
    before: dict[str, Tag],
    after_display: Sequence[str],
    *,
    added: Sequence[str],
    removed: Sequence[str],
    confirmed: Sequence[str],
    scope: str,
    rule_removed: Sequence[Tag],
    withheld: Sequence[Mapping[str, Any]] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (original, corrected) values of a ``tag_correction`` row.

    ``withheld``: the tags learned cut-offs held back from ``before`` (a full
    review judges them as if they had been shown; see :mod:`atlas.tagging.cutoffs`).
    """
    original: dict[str, Any] = {
        "tags": [state.to_json() for state in before.values()],
        "rules": {
            "added": [norm for norm, state in before.items() if state.source == "rule"],
            "removed": [state.to_json() for state in rule_removed],
        },
    }
    if withheld:
        original["withheld"] = [dict(state) for state in withheld]
    corrected = {
        "tags": list(after_display),
        "added": list(added),
        "removed": list(removed),
        "replaced": pair_replacements(removed, added),
        "confirmed": list(confirmed),
        "scope": scope,
    }
    return original, corrected


def pair_replacements(removed: Sequence[str], added: Sequence[str]) -> list[list[str]]:
    """Which added tag replaced which removed one.

    A one-for-one swap is a replacement; otherwise tags are paired greedily by
    spelling similarity (ratio >= 0.5), the most similar first.
    """
    if not removed or not added:
        return []
    if len(removed) == 1 and len(added) == 1:
        return [[removed[0], added[0]]]
    olds = [normalise_tag(old) for old in removed]
    scored = []
    for j, new in enumerate(added):
        # One matcher per added tag: difflib indexes its second text once.
        norm = normalise_tag(new)
        matcher = difflib.SequenceMatcher(None, "", norm)
        scored += [(_similarity(matcher, old, norm), i, j) for i, old in enumerate(olds)]
    scored.sort(reverse=True)
    used_old: set[int] = set()
    used_new: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for ratio, i, j in scored:
        if ratio < 0.5:
            break
        if i in used_old or j in used_new:
            continue
        used_old.add(i)
        used_new.add(j)
        pairs.append((i, j))
    return [[removed[i], added[j]] for i, j in sorted(pairs)]


def _similarity(
    matcher: difflib.SequenceMatcher[str], old: str, new: str, floor: float = 0.5
) -> float:
    """Spelling similarity of ``old`` to ``new`` (the matcher's second text), with
    abbreviations (``sci-fi`` / ``science fiction``) counted; 0 where it is below
    ``floor`` (nothing pairs there; difflib's cheap upper bounds say so without the
    full comparison)."""
    matcher.set_seq1(old)
    close = matcher.real_quick_ratio() >= floor and matcher.quick_ratio() >= floor
    ratio = matcher.ratio() if close else 0.0
    ratio = ratio if ratio >= floor else 0.0
    short, long = sorted((_WORDS.split(old), _WORDS.split(new)), key=len)
    if short and all(any(w.startswith(p) or p.startswith(w) for w in long) for p in short if p):
        ratio = max(ratio, 0.75)
    return ratio


def reject_tags(
    connection: Connection,
    media_id: int,
    tags: Iterable[Tag],
    *,
    feedback_id: int | None,
    now: datetime,
) -> None:
    """Remember that the user removed these tags from the item (never added back)."""
    states = {state.norm: state for state in tags}
    if not states:
        return
    known = set(
        connection.execute(
            select(media_tag_rejections.c.tag_norm).where(
                media_tag_rejections.c.media_id == media_id,
                media_tag_rejections.c.tag_norm.in_(sorted(states)),
            )
        ).scalars()
    )
    rows = [
        {
            "media_id": media_id,
            "tag": state.tag,
            "tag_norm": norm,
            "feedback_id": feedback_id,
            "rejected_at": now,
        }
        for norm, state in states.items()
        if norm not in known
    ]
    if rows:
        connection.execute(insert(media_tag_rejections), rows)


def clear_rejections(connection: Connection, media_id: int, norms: Iterable[str]) -> None:
    """The user set these tags again: they are no longer rejected."""
    wanted = sorted(set(norms))
    if wanted:
        connection.execute(
            delete(media_tag_rejections).where(
                and_(
                    media_tag_rejections.c.media_id == media_id,
                    media_tag_rejections.c.tag_norm.in_(wanted),
                )
            )
        )


def rejected_norms(connection: Connection, media_id: int) -> set[str]:
    """The tags the user removed from one item."""
    return set(
        connection.execute(
            select(media_tag_rejections.c.tag_norm).where(
                media_tag_rejections.c.media_id == media_id
            )
        ).scalars()
    )
