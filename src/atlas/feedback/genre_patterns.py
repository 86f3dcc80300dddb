"""Genre and file patterns: genre corrections (X -> Y), genres filled in from a tag,
and file organisation (items tagged T, or with genre G, moved into folder F)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from atlas.feedback.observations import Observations
from atlas.feedback.pattern_model import SEP, Measure, Pattern, clause_of, make_pattern

__all__ = ["genre_patterns", "move_patterns"]


def genre_patterns(miner: Observations, min_frequency: int) -> list[Pattern]:
    fix_count: Counter[tuple[str, str]] = Counter()
    fill_count: Counter[tuple[str, str]] = Counter()
    displays: dict[str, str] = {}
    old_displays: dict[str, str] = {}
    for media_id, (old, old_display, new, new_display, _w) in miner.genres.items():
        if new is None:
            continue
        displays[new] = new_display
        if old is not None:
            old_displays.setdefault(old, old_display)
            if old != new:
                fix_count[(old, new)] += 1
        else:
            context = miner.contexts.get(media_id)
            if context is not None:
                fill_count.update((tag, new) for tag in context.tags)
    fixes: dict[str, list[str]] = {}
    for (old, new), count in fix_count.items():
        if count >= min_frequency:
            fixes.setdefault(old, []).append(new)
    fills: dict[str, list[str]] = {}
    for (tag, new), count in fill_count.items():
        if count >= min_frequency:
            fills.setdefault(tag, []).append(new)

    measures: dict[tuple[str, str, str], Measure] = {}
    for media_id, (old, _od, new, _nd, w) in miner.genres.items():
        if old is not None:
            for target in fixes.get(old, ()):
                measures.setdefault(("fix", old, target), Measure()).add(w, new == target, media_id)
            continue
        context = miner.contexts.get(media_id)
        if context is None:
            continue
        for tag in context.tags.keys() & fills.keys():
            for target in fills[tag]:
                measures.setdefault(("fill", tag, target), Measure()).add(
                    w, new == target, media_id
                )

    patterns = []
    for (family, source, target), found in measures.items():
        if family == "fix":
            rule_type = "genre_correction"
            condition: dict[str, Any] = {"all": [{"genre": source}]}
            action: dict[str, Any] = {
                "op": "set_genre",
                "to": displays[target],
                "from_display": old_displays.get(source, source),
            }
        else:
            rule_type = "metadata_enhancement"
            condition = {"all": [{"genre": None}, {"has_tag": source}]}
            action = {"op": "set_genre", "to": displays[target]}
        patterns.append(
            make_pattern(rule_type, (rule_type, source, target), condition, action, found)
        )
    return patterns


# -- file locations ----------------------------------------------------------------


def move_patterns(miner: Observations, min_frequency: int) -> list[Pattern]:
    counts: Counter[tuple[str, str]] = Counter()
    observations = []
    for media_id, (folder, w) in miner.moves.items():
        context = miner.contexts.get(media_id)
        if context is None:
            continue
        features = {"tag" + SEP + norm for norm in context.tags}
        if context.genre_norm:
            features.add("genre" + SEP + context.genre_norm)
        observations.append((media_id, folder, w, features))
        counts.update((feature, folder) for feature in features)
    candidates: dict[str, list[str]] = {}
    for (feature, folder), count in counts.items():
        if count >= min_frequency:
            candidates.setdefault(feature, []).append(folder)
    measures: dict[tuple[str, str], Measure] = {}
    for media_id, folder, w, features in observations:
        for feature in features & candidates.keys():
            for target in candidates[feature]:
                measures.setdefault((feature, target), Measure()).add(w, folder == target, media_id)
    patterns = []
    for (feature, folder), found in measures.items():
        rule_type = "file_organisation"
        condition = {"all": [clause_of(feature)]}
        action = {"op": "move_to_folder", "folder": folder}
        patterns.append(
            make_pattern(rule_type, (rule_type, feature, folder), condition, action, found)
        )
    return patterns
