"""``/api/v1/tasks`` (list, show, cancel, start, live events) and ``/api/v1/analytics``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from atlas.api.deps import IdPath, JSONRoute, Lib, check_text
from atlas.api.models import EnqueueRequest
from atlas.errors import InvalidInput
from atlas.library import Library
from atlas.paths import user_path

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["tasks"], route_class=JSONRoute)

Status = Literal["queued", "running", "completed", "error", "cancelled"]
TaskType = Annotated[str | None, Query(alias="type", max_length=100)]
_TERMINAL = ("completed", "error", "cancelled")
#: How often the event streams look at the tasks table, and how long one stream lasts
#: (a browser's EventSource reconnects by itself).
POLL_S = 0.5
STREAM_S = 300.0


@router.get("/tasks", summary="Recent tasks, newest first")
def tasks(
    library: Lib,
    status: Status | None = None,
    task_type: TaskType = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[dict[str, Any]]:
    rows = library.tasks(status=status, task_type=check_text(task_type, "type"), limit=limit)
    return [row.to_dict() for row in rows]


@router.post("/tasks", status_code=202, summary="Start ingest, transcribe, tag, embed or cluster")
def enqueue(library: Lib, body: EnqueueRequest) -> dict[str, Any]:
    params = body.params()
    needs = "path" if body.task_type == "ingest" else None
    if body.task_type in ("transcribe", "tag", "embed"):
        needs = "media_ids"
    if needs is not None and needs not in params:
        raise InvalidInput(f"a {body.task_type} task needs {needs}")
    if body.task_type == "ingest":
        path = user_path(params["path"], what="path", resolve=True)
        if not path.is_file():
            raise InvalidInput(f"{path} is not a file; give the path of one media file")
        params["path"] = str(path)
        params.setdefault("root", str(path.parent))
    outcome = library.enqueue(body.task_type, params)
    return {"task_id": outcome.task_id, "task_type": outcome.task_type, "status": outcome.status}


@router.get("/tasks/events", summary="Server-sent events: the recent tasks whenever they change")
async def all_events(request: Request, library: Lib) -> StreamingResponse:
    async def stream() -> AsyncIterator[str]:
        last = None
        deadline = time.monotonic() + STREAM_S
        while time.monotonic() < deadline and not await request.is_disconnected():
            rows = await run_in_threadpool(library.tasks, limit=50)
            data = json.dumps(jsonable_encoder([row.to_dict() for row in rows]))
            if data != last:
                last = data
                yield f"event: tasks\ndata: {data}\n\n"
            await asyncio.sleep(POLL_S)

    return _events(stream())


@router.get("/tasks/{task_id}", summary="One task with its result and every logged run")
def task(library: Lib, task_id: IdPath) -> dict[str, Any]:
    result: dict[str, Any] = library.task(task_id).to_dict()
    return result


@router.post("/tasks/{task_id}/cancel", summary="Cancel a queued task or stop a running one")
def cancel(library: Lib, task_id: IdPath) -> dict[str, Any]:
    outcome = library.cancel(task_id)
    return {"task_id": outcome.task_id, "status": outcome.status}


@router.get(
    "/tasks/{task_id}/events",
    summary="Server-sent events: the task's status until it ends",
)
async def task_events(request: Request, library: Lib, task_id: IdPath) -> StreamingResponse:
    await run_in_threadpool(library.task, task_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        last = None
        deadline = time.monotonic() + STREAM_S
        while time.monotonic() < deadline and not await request.is_disconnected():
            state = await run_in_threadpool(_state, library, task_id)
            data = json.dumps(jsonable_encoder(state))
            if data != last:
                last = data
                yield f"event: status\ndata: {data}\n\n"
            if state["status"] in _TERMINAL:
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(POLL_S)

    return _events(stream())


def _state(library: Library, task_id: int) -> dict[str, Any]:
    detail = library.task(task_id)
    return {
        "task_id": task_id,
        "task_type": detail.task.task_type,
        "status": detail.task.status,
        "attempts": detail.task.attempts,
        "runs": len(detail.runs),
        "error": detail.task.error_reason,
        "result": detail.result if detail.task.status in _TERMINAL else None,
    }


def _events(stream: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- analytics -----------------------------------------------------------------------


@router.get("/analytics/summary", tags=["analytics"], summary="Success rate, durations, reasons")
def summary(
    library: Lib,
    hours: Annotated[int, Query(ge=1, le=24 * 3650)] = 24,
    task_type: TaskType = None,
) -> dict[str, Any]:
    result: dict[str, Any] = library.metrics(
        hours=hours, task_type=check_text(task_type, "type")
    ).to_dict()
    return result


@router.get("/analytics/trends", tags=["analytics"], summary="Per day and type, with direction")
def trends(
    library: Lib,
    days: Annotated[int, Query(ge=1, le=3650)] = 7,
    task_type: TaskType = None,
) -> dict[str, Any]:
    result: dict[str, Any] = library.trends(
        days=days, task_type=check_text(task_type, "type")
    ).to_dict()
    return result


@router.get("/analytics/bottlenecks", tags=["analytics"], summary="Slow types, longest runs")
def bottlenecks(
    library: Lib,
    hours: Annotated[int, Query(ge=1, le=24 * 3650)] = 24,
    threshold_ms: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    task_type: TaskType = None,
) -> dict[str, Any]:
    result: dict[str, Any] = library.bottlenecks(
        hours=hours, threshold_ms=threshold_ms, task_type=check_text(task_type, "type")
    ).to_dict()
    return result
