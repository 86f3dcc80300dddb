"""``/api/v1/rules`` and the feedback loop: what Atlas learned from corrections."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from atlas.api.deps import IdPath, JSONRoute, Lib
from atlas.api.models import LoopRequest, RuleSwitch
from atlas.db import MAX_ID

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["rules"], route_class=JSONRoute)


@router.get("/rules", summary="Learned rules with evidence, usage and success")
def rules(library: Lib) -> list[dict[str, Any]]:
    return [rule.to_dict() for rule in library.rules()]


@router.get("/rules/applications", summary="What rules changed, newest first")
def applications(
    library: Lib,
    rule_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    media_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    outcome: Literal["pending", "kept", "reverted"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    found = library.applications(rule_id=rule_id, media_id=media_id, outcome=outcome, limit=limit)
    return [application.to_dict() for application in found]


@router.get("/rules/{rule_id}", summary="One rule: condition, action, evidence, applications")
def rule(library: Lib, rule_id: IdPath) -> dict[str, Any]:
    result: dict[str, Any] = library.rule(rule_id).to_dict()
    return result


@router.post("/rules/{rule_id}/enable", summary="Switch a rule on")
def enable(library: Lib, rule_id: IdPath) -> dict[str, Any]:
    result: dict[str, Any] = library.set_rule(rule_id, True).to_dict()
    return result


@router.post("/rules/{rule_id}/disable", summary="Switch a rule off until enabled again")
def disable(library: Lib, rule_id: IdPath, body: RuleSwitch | None = None) -> dict[str, Any]:
    reason = body.reason if body is not None else None
    result: dict[str, Any] = library.set_rule(rule_id, False, reason=reason).to_dict()
    return result


@router.post(
    "/rules/applications/{application_id}/undo",
    summary="Undo one application of a rule, if the item has not changed since",
)
def undo(library: Lib, application_id: IdPath) -> dict[str, Any]:
    result: dict[str, Any] = library.undo(application_id).to_dict()
    return result


@router.post(
    "/feedback-loop",
    status_code=202,
    summary="Start the feedback loop (dry run or run) as a task; returns its id",
)
def feedback_loop(library: Lib, body: LoopRequest) -> dict[str, Any]:
    outcome = library.start_feedback_loop(**body.model_dump())
    return {"task_id": outcome.task_id, "status": outcome.status}
