"""``/api/v1/autolearn``: insights, recommendations that act and are judged, the schedule."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from atlas.api.deps import IdPath, JSONRoute, Lib
from atlas.api.models import AutolearnRun, RecommendationApply, RecommendationDismiss

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/autolearn", tags=["autolearn"], route_class=JSONRoute)

InsightKind = Literal["performance", "reliability", "coverage", "learning", "library", "schedule"]
RecommendationStatus = Literal["new", "applied", "dismissed", "superseded"]


@router.get("/insights", summary="What the data supports noticing, each with its evidence")
def insights(
    library: Lib,
    kind: InsightKind | None = None,
    days: Annotated[int, Query(ge=1, le=365, description="Days of task runs to look at.")] = 7,
) -> dict[str, Any]:
    result: dict[str, Any] = library.insights(kind=kind, days=days).to_dict()
    return result


@router.get("/recommendations", summary="Recommendations by status, and the kinds no longer made")
def recommendations(
    library: Lib,
    status: Annotated[list[RecommendationStatus] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    found = library.recommendations(statuses=tuple(status or ("new",)), limit=limit)
    return {
        "recommendations": [rec.to_dict() for rec in found],
        "blocked": library.blocked_recommendations(),
    }


@router.post(
    "/recommendations", summary="Make recommendations from the current insights; the open ones"
)
def recommend(library: Lib) -> dict[str, Any]:
    sync, open_recs = library.recommend()
    return {"sync": sync.to_dict(), "recommendations": [rec.to_dict() for rec in open_recs]}


@router.get("/recommendations/{rec_id}", summary="One recommendation with its plan and verdict")
def recommendation(library: Lib, rec_id: IdPath) -> dict[str, Any]:
    result: dict[str, Any] = library.recommendation(rec_id).to_dict()
    return result


@router.post(
    "/recommendations/{rec_id}/apply",
    summary="Apply a recommendation as a task (202 with its id); with dry_run, 200 and its plan",
    status_code=202,
)
def apply(
    library: Lib, rec_id: IdPath, response: Response, body: RecommendationApply | None = None
) -> dict[str, Any]:
    if body is not None and body.dry_run:
        response.status_code = 200
        result: dict[str, Any] = library.apply_recommendation(rec_id, dry_run=True).to_dict()
        return result
    outcome = library.start_apply_recommendation(rec_id)
    return {"task_id": outcome.task_id, "status": outcome.status}


@router.post(
    "/recommendations/{rec_id}/dismiss",
    summary="Dismiss a recommendation; not proposed again while its data stays the same",
)
def dismiss(
    library: Lib, rec_id: IdPath, body: RecommendationDismiss | None = None
) -> dict[str, Any]:
    reason = body.reason if body is not None else None
    result: dict[str, Any] = library.dismiss_recommendation(rec_id, reason).to_dict()
    return result


@router.post(
    "/run",
    status_code=202,
    summary="Start one cycle (judge, find insights, recommend; apply the safe ones with auto)",
)
def run(library: Lib, body: AutolearnRun | None = None) -> dict[str, Any]:
    outcome = library.start_autolearn(auto=body.auto if body is not None else False)
    return {"task_id": outcome.task_id, "status": outcome.status}


@router.get("/schedule", summary="The schedule of heavy periodic work a worker runs, and why")
def schedule(library: Lib) -> dict[str, Any]:
    result: dict[str, Any] = library.schedule().to_dict()
    return result
