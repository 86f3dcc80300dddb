"""``/api/v1/search`` and the user's corrections: tags, genre, rating, metadata, moves.

Every write goes through the same service function as its command
(``track-tag-edits``, ``media edit``, ``media move``, ``media-tags add|remove``),
so the same ``user_feedback`` rows are written and the same rule
applications judged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from atlas.api.deps import IdPath, JSONRoute, Lib, check_text, plain
from atlas.api.models import CorrectRequest, EditRequest, MoveRequest, TagsRequest
from atlas.db import MAX_ID

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["search", "feedback"], route_class=JSONRoute)

MediaType = Literal["video", "audio", "image", "other"]


@router.get("/search", tags=["search"], summary="Media matching a text (vector, lexical, hybrid)")
def search(
    library: Lib,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="The text.")],
    mode: Literal["vector", "lexical", "hybrid"] = "hybrid",
    top: Annotated[int, Query(ge=1, le=100)] = 10,
    threshold: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    media_type: Annotated[MediaType | None, Query(alias="type")] = None,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    cluster: bool = False,
) -> dict[str, Any]:
    result: dict[str, Any] = plain(
        library.search(
            check_text(q, "q") or "",
            mode=mode,
            top=top,
            threshold=threshold,
            media_type=media_type,
            genre=check_text(genre, "genre"),
            cluster=cluster,
        )
    )
    return result


@router.post(
    "/media/{media_id}/feedback",
    tags=["feedback"],
    summary="Correct tags (the full set), genre or rating; recorded as feedback",
)
def correct(library: Lib, media_id: IdPath, body: CorrectRequest) -> dict[str, Any]:
    report = library.correct(
        media_id,
        tags=body.tags,
        genre=body.genre,
        rating=body.rating,
        confidence=body.confidence,
    )
    return {**report.to_dict(), "tags": plain(library.tags(media_id))["tags"]}


@router.patch(
    "/media/{media_id}",
    tags=["feedback"],
    summary="Edit title, genre, description, artist or year; recorded as feedback",
)
def edit(library: Lib, media_id: IdPath, body: EditRequest) -> dict[str, Any]:
    return plain(library.edit(media_id, **body.model_dump(exclude_none=True)))


@router.post(
    "/media/{media_id}/move",
    tags=["feedback"],
    summary="Move the item's file within the library folders; recorded as feedback",
)
def move(library: Lib, media_id: IdPath, body: MoveRequest) -> dict[str, Any]:
    return plain(library.move(media_id, body.destination))


@router.post("/media/{media_id}/tags", tags=["feedback"], summary="Add tags (the user's)")
def add_tags(library: Lib, media_id: IdPath, body: TagsRequest) -> dict[str, Any]:
    return plain(library.add_tags(media_id, body.tags, kind=body.kind))


@router.post(
    "/media/{media_id}/tags/remove",
    tags=["feedback"],
    summary="Remove tags; neither the tagger nor a rule adds them back",
)
def remove_tags(library: Lib, media_id: IdPath, body: TagsRequest) -> dict[str, Any]:
    return plain(library.remove_tags(media_id, body.tags))


@router.get("/feedback", tags=["feedback"], summary="The recorded corrections, newest first")
def feedback(
    library: Lib,
    media_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    feedback_type: Annotated[
        Literal["tag_correction", "file_move", "rating", "metadata_edit"] | None,
        Query(alias="type"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    rows = library.feedback(media_id=media_id, feedback_type=feedback_type, limit=limit)
    return [row.to_dict() for row in rows]
