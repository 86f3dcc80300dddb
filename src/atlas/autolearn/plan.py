"""LLM planning: the insights go to a chat model, an ordered plan comes back as recommendations.

The model is sent the current insights (their statements and evidence, nothing
more) and, for items the user names, their descriptive metadata (title, artist,
genre, year, description), never media or paths. It must answer with JSON::

    {"plan": [{"insight": KEY, "action": ACTION, "params": {...}, "why": TEXT}],
     "metadata": [{"media_id": ID, "field": FIELD, "value": VALUE, "why": TEXT}]}

Every step is validated: the insight must exist; the action must be the one Atlas
can take about that insight (or ``fill-metadata`` for a named item's empty
field); the parameters must be known and in range, and may only narrow what the
insight covers (a subset of its media, its rule, its task type). Valid steps are
stored as ordinary recommendations (origin ``llm``, in the plan's order), so the
same apply and judge path serves them; a newer plan supersedes an older one's
open steps. An answer that is not JSON is refused whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update

from atlas.autolearn.actions import (
    FILLABLE,
    SAFE_ACTIONS,
    action_data_key,
    check_action,
    describe_action,
)
from atlas.autolearn.collect import collect_insights
from atlas.autolearn.insights import Insight
from atlas.autolearn.llm import NOT_CONFIGURED, chat, configured, describe_model
from atlas.config import Settings
from atlas.db import check_id, database_errors, utcnow
from atlas.db.tables import autolearn_recommendations as recs
from atlas.db.tables import media
from atlas.errors import AtlasError, InvalidInput, NotFound, Unavailable

__all__ = ["MAX_ITEMS", "MAX_STEPS", "PlanReport", "plan_with_llm"]

MAX_STEPS = 20
MAX_ITEMS = 20
_TEXT_LIMIT = 600

_SYSTEM = (
    "You plan maintenance of a media library. You are given insights, each with a key, "
    "a statement, evidence and at most one action Atlas can take about it, and some "
    "items whose metadata may be incomplete. Answer with JSON only: "
    '{"plan": [{"insight": "<key>", "action": "<action>", "params": {...}, "why": "<text>"}], '
    '"metadata": [{"media_id": <id>, "field": "<field>", "value": <value>, "why": "<text>"}]}. '
    "Order the plan by what helps the library most. Use only the insights' actions, "
    "with their parameters or a subset of their ids. Metadata fields: "
    + ", ".join(FILLABLE)
    + "; suggest a value only for an empty field."
)


@dataclass
class PlanReport:
    model: str
    stored: list[int] = field(default_factory=list)
    #: (step, reason) for every step that was refused.
    rejected: list[tuple[str, str]] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "stored": self.stored,
            "rejected": [{"step": step, "reason": reason} for step, reason in self.rejected],
            "superseded": self.superseded,
        }


def _insight_view(insight: Insight) -> dict[str, Any]:
    view = insight.to_dict()
    view.pop("rule", None)
    suggestion = view.get("suggestion")
    if suggestion and isinstance(suggestion.get("params", {}).get("media_ids"), list):
        ids = suggestion["params"]["media_ids"]
        suggestion["params"] = {**suggestion["params"], "media_ids": ids[:50]}
    return view


def _items(engine: Engine, media_ids: Sequence[int]) -> list[dict[str, Any]]:
    if len(media_ids) > MAX_ITEMS:
        raise InvalidInput(f"at most {MAX_ITEMS} items can be sent for metadata suggestions")
    ids = [check_id(m, "media") for m in media_ids]
    with database_errors(engine), engine.connect() as connection:
        rows = {
            row.id: row
            for row in connection.execute(
                select(
                    media.c.id,
                    media.c.title,
                    media.c.artist,
                    media.c.genre,
                    media.c.year,
                    media.c.description,
                ).where(media.c.id.in_(ids))
            )
        }
    missing = [m for m in ids if m not in rows]
    if missing:
        raise NotFound(f"no media with id {missing[0]}")
    return [
        {
            "media_id": m,
            "title": rows[m].title,
            "artist": rows[m].artist,
            "genre": rows[m].genre,
            "year": rows[m].year,
            "description": (rows[m].description or "")[:_TEXT_LIMIT] or None,
        }
        for m in ids
    ]


def parse_answer(text: str) -> tuple[list[Any], list[Any]]:
    """The plan and metadata lists of an answer; ``InvalidInput`` when it is not the JSON asked."""
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidInput("the model's answer is not JSON; nothing was stored") from None
    if not isinstance(data, dict):
        raise InvalidInput("the model's answer is not a JSON object; nothing was stored")
    plan, metadata = data.get("plan", []), data.get("metadata", [])
    if not isinstance(plan, list) or not isinstance(metadata, list):
        raise InvalidInput("the model's plan and metadata must be lists; nothing was stored")
    if len(plan) + len(metadata) > MAX_STEPS * 2:
        raise InvalidInput("the model's answer has too many steps; nothing was stored")
    return plan, metadata


def _narrows(insight: Insight, action: str, params: dict[str, Any]) -> str | None:
    """Why ``params`` reach beyond what the insight covers, or None."""
    suggestion = insight.suggestion
    if suggestion is None:
        return f"insight {insight.key} has no action Atlas can take"
    if action != suggestion.action:
        return f"the action for insight {insight.key} is {suggestion.action}, not {action}"
    allowed = suggestion.params
    if "media_ids" in params:
        outside = sorted(set(params["media_ids"]) - set(allowed.get("media_ids", [])))
        if outside:
            return f"media {outside[0]} is not among the items of insight {insight.key}"
        if params.get("gap", allowed.get("gap")) != allowed.get("gap"):
            return "the gap must be the insight's own"
    for key in ("rule_id", "task_type", "pattern_keys"):
        if key in params and params[key] != allowed.get(key):
            return f"{key} must be the insight's own ({allowed.get(key)!r})"
    return None


def plan_with_llm(
    settings: Settings, engine: Engine, *, media_ids: Sequence[int] = ()
) -> PlanReport:
    """Ask the configured model for a plan and store its valid steps as recommendations.

    Raises ``Unavailable`` when no model is configured or it does not answer, and
    ``InvalidInput`` when its answer is not the JSON asked for (nothing stored).
    """
    config = settings.autolearn
    if not configured(config):
        raise Unavailable(NOT_CONFIGURED)
    items = _items(engine, media_ids)
    report = collect_insights(settings, engine)
    insights = {insight.key: insight for insight in report.insights}
    prompt = json.dumps(
        {"insights": [_insight_view(i) for i in report.insights], "items": items},
        default=str,
        ensure_ascii=False,
    )
    plan, metadata = parse_answer(chat(config, _SYSTEM, prompt))
    result = PlanReport(model=describe_model(config))
    steps: list[tuple[str, str, dict[str, Any], str, str, float]] = []
    named = {item["media_id"]: item for item in items}
    for index, step in enumerate(plan, 1):
        label = f"plan step {index}"
        try:
            if not isinstance(step, dict):
                raise InvalidInput("is not an object")
            key, action = step.get("insight"), step.get("action")
            params = step.get("params") or {}
            insight = insights.get(key) if isinstance(key, str) else None
            if insight is None:
                raise InvalidInput(f"names no current insight ({key!r})")
            if not isinstance(action, str):
                raise InvalidInput("names no action")
            if not isinstance(params, dict):
                raise InvalidInput("has parameters that are not an object")
            if insight.suggestion is not None and action == insight.suggestion.action:
                # What the step leaves out is the insight's own.
                params = {**insight.suggestion.params, **params}
            check_action(action, params)
            why = _narrows(insight, action, params)
            if why:
                raise InvalidInput(why)
            assert insight.suggestion is not None
            metric = insight.suggestion.metric
            baseline = (
                float(len(params["media_ids"]))
                if "media_ids" in params
                else insight.suggestion.baseline
            )
            steps.append((insight.key, action, params, insight.statement, metric, baseline))
        except AtlasError as exc:
            result.rejected.append((label, exc.message))
    for index, entry in enumerate(metadata, 1):
        label = f"metadata suggestion {index}"
        try:
            if not isinstance(entry, dict):
                raise InvalidInput("is not an object")
            params = {k: entry.get(k) for k in ("media_id", "field", "value")}
            check_action("fill-metadata", params)
            if params["media_id"] not in named:
                raise InvalidInput(f"media {params['media_id']} was not sent to the model")
            if named[params["media_id"]].get(str(params["field"])) not in (None, ""):
                raise InvalidInput(f"the {params['field']} of media {params['media_id']} is set")
            statement = f"media {params['media_id']} has no {params['field']}"
            steps.append(
                (
                    f"llm:metadata:{params['media_id']}:{params['field']}",
                    "fill-metadata",
                    params,
                    statement,
                    f"empty {params['field']} on media {params['media_id']}",
                    1.0,
                )
            )
        except AtlasError as exc:
            result.rejected.append((label, exc.message))
    _store(settings, engine, steps, insights, result)
    return result


def _store(
    settings: Settings,
    engine: Engine,
    steps: list[tuple[str, str, dict[str, Any], str, str, float]],
    insights: dict[str, Insight],
    result: PlanReport,
) -> None:
    keys = [action_data_key(settings, engine, action, params) for _, action, params, *_ in steps]
    now = utcnow()
    with database_errors(engine), engine.begin() as connection:
        old = connection.scalars(
            select(recs.c.id).where(recs.c.origin == "llm", recs.c.status == "new")
        ).all()
        if old:
            connection.execute(
                update(recs)
                .where(recs.c.id.in_(old), recs.c.status == "new")
                .values(
                    status="superseded",
                    superseded_reason="replaced by a newer plan",
                    updated_at=now,
                )
            )
        result.superseded = list(old)
        for rank, ((key, action, params, statement, metric, baseline), data_key) in enumerate(
            zip(steps, keys, strict=True), 1
        ):
            insight = insights.get(key)
            rec_id = connection.execute(
                recs.insert()
                .values(
                    kind=action,
                    status="new",
                    insight_key=key,
                    insight=insight.to_dict() if insight else {"key": key, "statement": statement},
                    statement=statement,
                    action={
                        "kind": action,
                        "params": params,
                        "describe": describe_action(action, params),
                    },
                    metric=metric,
                    baseline=baseline,
                    data_key=data_key,
                    safe=action in SAFE_ACTIONS,
                    origin="llm",
                    rank=rank,
                    created_at=now,
                    updated_at=now,
                )
                .returning(recs.c.id)
            ).scalar_one()
            result.stored.append(int(rec_id))
