"""What a recommendation does: each action kind plans, checks, runs and measures itself.

A plan is computed from the stored action alone, so ``apply --dry-run`` shows
exactly what ``apply`` will do. Before running, the action recomputes the key of
the data it acts on: when that changed since the recommendation was made, it is
refused (the next cycle makes it again from the new data). The metric an action
promises to lower is measured the same way before and after.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, select, update

from atlas.autolearn.coverage import CoverageState, coverage_state
from atlas.config import Settings
from atlas.db import database_errors, utcnow
from atlas.db.tables import media, task_logs
from atlas.errors import InvalidInput
from atlas.feedback import list_rules, mine_patterns, set_rule_enabled
from atlas.tasks import TaskContext

__all__ = [
    "ACTION_KINDS",
    "FILLABLE",
    "PARAMETERS",
    "SAFE_ACTIONS",
    "action_data_key",
    "check_action",
    "describe_action",
    "measure_action",
    "run_action",
]

#: Actions the automatic cycle may apply on its own: they only queue missing work.
SAFE_ACTIONS = frozenset({"embed", "transcribe", "tag"})
ACTION_KINDS = (
    "embed",
    "transcribe",
    "tag",
    "feedback-loop",
    "disable-rule",
    "set-retries",
    "fill-metadata",
    "transcribe-smaller",
)
#: Fields a fill-metadata action may fill (only while empty: it never overwrites).
FILLABLE = ("genre", "year", "description", "artist")
#: The parameters each action takes; anything else is refused.
PARAMETERS = {
    "embed": {"gap", "media_ids"},
    "transcribe": {"gap", "media_ids"},
    "tag": {"gap", "media_ids"},
    "feedback-loop": {"pattern_keys"},
    "disable-rule": {"rule_id"},
    "set-retries": {"task_type", "retries"},
    "fill-metadata": {"media_id", "field", "value"},
    "transcribe-smaller": {"media_ids"},
}
_QUEUE_TASK = {"embed": "embed", "transcribe": "transcribe", "tag": "tag"}
MAX_RETRIES = 20


@dataclass(frozen=True)
class ActionRun:
    """What running an action did: the follow-up tasks it queued and what it changed."""

    task_ids: list[int]
    detail: dict[str, Any]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _ids(params: Mapping[str, Any]) -> list[int]:
    return [int(m) for m in params.get("media_ids", [])]


def check_action(kind: str, params: Mapping[str, Any]) -> None:
    """Refuse an action of an unknown kind or with out-of-range parameters (``InvalidInput``)."""
    if kind not in ACTION_KINDS:
        raise InvalidInput(f"unknown action {kind!r}; the actions are: {', '.join(ACTION_KINDS)}")
    if not isinstance(params, Mapping):
        raise InvalidInput(f"action {kind} needs its parameters as an object")
    unexpected = sorted(set(params) - PARAMETERS[kind])
    if unexpected:
        raise InvalidInput(f"action {kind} takes no parameter {unexpected[0]!r}")
    if kind in _QUEUE_TASK or kind == "transcribe-smaller":
        ids = params.get("media_ids")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in ids)
        ):
            raise InvalidInput(f"action {kind} needs a non-empty list of media ids")
    elif kind == "disable-rule":
        rule_id = params.get("rule_id")
        if not isinstance(rule_id, int) or isinstance(rule_id, bool) or rule_id < 1:
            raise InvalidInput("action disable-rule needs a rule id")
    elif kind == "set-retries":
        retries = params.get("retries")
        if not isinstance(params.get("task_type"), str):
            raise InvalidInput("action set-retries needs a task type")
        if (
            not isinstance(retries, int)
            or isinstance(retries, bool)
            or not 0 <= retries <= MAX_RETRIES
        ):
            raise InvalidInput(f"action set-retries needs retries between 0 and {MAX_RETRIES}")
    elif kind == "fill-metadata":
        media_id, field, value = params.get("media_id"), params.get("field"), params.get("value")
        if not isinstance(media_id, int) or isinstance(media_id, bool) or media_id < 1:
            raise InvalidInput("action fill-metadata needs a media id")
        if field not in FILLABLE:
            raise InvalidInput(f"action fill-metadata fills only {', '.join(FILLABLE)}")
        if field == "year":
            if not isinstance(value, int) or isinstance(value, bool) or not 1800 <= value <= 2200:
                raise InvalidInput("a year must be a whole number from 1800 to 2200")
        elif not isinstance(value, str) or not value.strip() or len(value) > 2000:
            raise InvalidInput(f"a {field} must be text of 1 to 2000 characters")


def describe_action(kind: str, params: Mapping[str, Any]) -> str:
    """The plan in one line: exactly what applying will do."""
    if kind in _QUEUE_TASK:
        ids = _ids(params)
        shown = ", ".join(str(m) for m in ids[:12]) + (", ..." if len(ids) > 12 else "")
        return f"queue {_QUEUE_TASK[kind]} tasks for {len(ids)} media items ({shown})"
    if kind == "feedback-loop":
        return "run the feedback loop (mine corrections into rules, apply the rules)"
    if kind == "transcribe-smaller":
        ids = _ids(params)
        return (
            f"transcribe {len(ids)} media items again with the fast (smaller) Whisper "
            f"model: {', '.join(str(m) for m in ids[:12])}" + (", ..." if len(ids) > 12 else "")
        )
    if kind == "fill-metadata":
        return (
            f"set the empty {params['field']} of media {params['media_id']} to {params['value']!r}"
        )
    if kind == "disable-rule":
        return f"disable rule {params['rule_id']}"
    if kind == "set-retries":
        return (
            f"retry failed {params['task_type']} tasks {params['retries']} times at most "
            "(for processes started from now on, unless tasks.<type>.retries is set)"
        )
    raise InvalidInput(f"unknown action {kind!r}")


def action_data_key(
    settings: Settings,
    engine: Engine,
    kind: str,
    params: Mapping[str, Any],
    *,
    state: CoverageState | None = None,
) -> str:
    """A key of the data the action acts on now; a changed key means the plan is out of date.

    ``state``: the coverage computed a moment ago, to not compute it again.
    """
    if kind in _QUEUE_TASK:
        state = state or coverage_state(settings, engine, now=utcnow())
        gap = str(params.get("gap"))
        return _digest([kind, gap, sorted(state.gaps.get(gap, []))])
    if kind == "feedback-loop":
        return _digest([kind, sorted(_uncovered(settings, engine, params))])
    if kind == "transcribe-smaller":
        return _digest([kind, sorted(untranscribed(engine, _ids(params)))])
    if kind == "disable-rule":
        rule = _rule(engine, int(params["rule_id"]))
        return _digest([kind, rule.id, rule.enabled, rule.success_count, rule.failure_count])
    if kind == "set-retries":
        return _digest([kind, params["task_type"]])
    if kind == "fill-metadata":
        return _digest([kind, params["media_id"], params["field"], _field(engine, params)])
    raise InvalidInput(f"unknown action {kind!r}")


def untranscribed(engine: Engine, media_ids: list[int]) -> list[int]:
    """Which of these items still have no transcript."""
    from atlas.db.tables import transcripts

    with database_errors(engine), engine.connect() as connection:
        done = set(
            connection.scalars(
                select(transcripts.c.media_id).where(transcripts.c.media_id.in_(media_ids))
            )
        )
    return [m for m in media_ids if m not in done]


def _field(engine: Engine, params: Mapping[str, Any]) -> Any:
    """The current value of the field a fill-metadata action fills (NotFound: no such item)."""
    from atlas.errors import NotFound

    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(
            select(media.c[str(params["field"])]).where(media.c.id == int(params["media_id"]))
        ).first()
    if row is None:
        raise NotFound(f"no media with id {params['media_id']}")
    value = row[0]
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _rule(engine: Engine, rule_id: int) -> Any:
    for rule in list_rules(engine):
        if rule.id == rule_id:
            return rule
    raise InvalidInput(f"rule {rule_id} does not exist")


def _uncovered(settings: Settings, engine: Engine, params: Mapping[str, Any]) -> list[str]:
    """The pattern keys of ``params`` that still qualify and have no rule."""
    ruled = {rule.pattern_key for rule in list_rules(engine)}
    with database_errors(engine), engine.connect() as connection:
        mining = mine_patterns(connection, settings.feedback)
    qualifying = {pattern.key for pattern in mining.qualifying}
    return [k for k in params.get("pattern_keys", []) if k in qualifying and k not in ruled]


def run_action(ctx: TaskContext, kind: str, params: Mapping[str, Any]) -> ActionRun:
    """Do the action inside the apply task (follow-up work is queued as its own tasks)."""
    settings, engine = ctx.settings, ctx.engine
    if kind in _QUEUE_TASK:
        size = {
            "embed": settings.embedding.batch_size,
            "tag": settings.tagging.batch_size,
            "transcribe": 8,
        }[kind]
        ids = _ids(params)
        task_ids = []
        for start in range(0, len(ids), size):
            outcome = ctx.submit(_QUEUE_TASK[kind], {"media_ids": ids[start : start + size]})
            task_ids.append(outcome.task_id)
        return ActionRun(task_ids, {"queued_items": len(ids)})
    if kind == "feedback-loop":
        outcome = ctx.submit("feedback-loop", {"mode": "full"})
        return ActionRun([outcome.task_id], {})
    if kind == "transcribe-smaller":
        task_ids = []
        ids = _ids(params)
        for start in range(0, len(ids), 8):
            outcome = ctx.submit(
                "transcribe", {"media_ids": ids[start : start + 8], "quality": "fast"}
            )
            task_ids.append(outcome.task_id)
        return ActionRun(task_ids, {"queued_items": len(ids)})
    if kind == "disable-rule":
        rule = _rule(engine, int(params["rule_id"]))
        set_rule_enabled(
            engine,
            int(params["rule_id"]),
            False,
            reason=(
                f"disabled by autolearn: reverted on {rule.failure_count} of {rule.judged} items"
            ),
        )
        return ActionRun([], {"reverted_before": rule.failure_count})
    if kind == "fill-metadata":
        column = media.c[str(params["field"])]
        with database_errors(engine), engine.begin() as connection:
            done = connection.execute(
                update(media)
                .where(media.c.id == int(params["media_id"]), column.is_(None))
                .values({column: params["value"]})
            ).rowcount
        return ActionRun([], {"filled": bool(done)})
    if kind == "set-retries":
        # Stored with the recommendation, applied: every process opened from now on
        # retries the type this often, unless the settings say otherwise.
        return ActionRun([], {"task_type": params["task_type"], "retries": params["retries"]})
    raise InvalidInput(f"unknown action {kind!r}")


def measure_action(
    settings: Settings,
    engine: Engine,
    kind: str,
    params: Mapping[str, Any],
    *,
    since: datetime | None = None,
    detail: Mapping[str, Any] | None = None,
) -> tuple[float, int]:
    """The action's metric now, and how many new observations it rests on."""
    if kind in _QUEUE_TASK:
        state = coverage_state(settings, engine, now=utcnow())
        remaining = set(state.gaps.get(str(params.get("gap")), [])) & set(_ids(params))
        return float(len(remaining)), len(_ids(params))
    if kind == "feedback-loop":
        return float(len(_uncovered(settings, engine, params))), 1
    if kind == "transcribe-smaller":
        return float(len(untranscribed(engine, _ids(params)))), len(_ids(params))
    if kind == "disable-rule":
        rule = _rule(engine, int(params["rule_id"]))
        before = int((detail or {}).get("reverted_before", rule.failure_count))
        return float(rule.failure_count - before), 1
    if kind == "set-retries":
        return _retried_in_vain(engine, str(params["task_type"]), since)
    if kind == "fill-metadata":
        return (0.0 if _field(engine, params) is not None else 1.0), 1
    raise InvalidInput(f"unknown action {kind!r}")


def _retried_in_vain(engine: Engine, task_type: str, since: datetime | None) -> tuple[float, int]:
    conditions = [
        task_logs.c.task_type == task_type,
        task_logs.c.status.in_(("completed", "error")),
    ]
    if since is not None:
        conditions.append(task_logs.c.created_at >= since)
    with database_errors(engine), engine.connect() as connection:
        row = connection.execute(
            select(
                func.count().label("runs"),
                func.count().filter(and_(task_logs.c.retries > 0, task_logs.c.status == "error")),
            ).where(and_(*conditions))
        ).one()
    return float(row[1] or 0), int(row[0] or 0)


def learned_retries(engine: Engine) -> dict[str, int]:
    """Task type -> retries, from applied set-retries recommendations (the latest wins)."""
    from atlas.db.tables import autolearn_recommendations as recs

    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(recs.c.action)
            .where(recs.c.kind == "set-retries", recs.c.status == "applied")
            .order_by(recs.c.applied_at, recs.c.id)
        ).all()
    policies: dict[str, int] = {}
    for row in rows:
        params = dict(row.action).get("params", {})
        policies[str(params["task_type"])] = int(params["retries"])
    return policies
