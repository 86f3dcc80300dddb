"""``/api/v1/media``: list, show, transcript, tags, the file itself, and similar items."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from atlas.api.deps import IdPath, JSONRoute, Lib, Limit, check_text, plain
from atlas.db import MAX_ID

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/media", tags=["media"], route_class=JSONRoute)

MediaType = Literal["video", "audio", "image", "other"]
Sort = Literal["id", "title", "year", "rating", "added"]


@router.get("", summary="List media with filters, sorting and paging")
def list_media(
    library: Lib,
    media_type: Annotated[MediaType | None, Query(alias="type")] = None,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    cluster: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    title: Annotated[str | None, Query(max_length=1000)] = None,
    sort: Sort = "id",
    descending: bool = False,
    limit: Limit = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    page = library.media_page(
        media_type=media_type,
        genre=check_text(genre, "genre"),
        tag=check_text(tag, "tag"),
        cluster=cluster,
        title=check_text(title, "title"),
        sort=sort,
        descending=descending,
        limit=limit,
        offset=offset,
    )
    return {
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "items": [
            {**item.to_dict(), "tags": [tag.tag for tag in page.tags[item.id]]}
            for item in page.items
        ],
    }


@router.get("/{media_id}", summary="Everything Atlas knows about one item")
def show_media(library: Lib, media_id: IdPath) -> dict[str, Any]:
    detail: dict[str, Any] = library.media(media_id).to_dict()
    return detail


@router.get("/{media_id}/transcript", summary="The transcript with its timed segments")
def transcript(library: Lib, media_id: IdPath) -> dict[str, Any]:
    result: dict[str, Any] = library.transcript(media_id).to_dict()
    return result


@router.get("/{media_id}/tags", summary="Tags with source, confidence and why each was given")
def tags(library: Lib, media_id: IdPath) -> dict[str, Any]:
    result: dict[str, Any] = library.tags(media_id).to_dict()
    return result


@router.get(
    "/{media_id}/file",
    summary="The media file (range requests), only from inside the library folders",
    response_class=FileResponse,
)
def media_file(library: Lib, media_id: IdPath) -> FileResponse:
    return FileResponse(library.media_file(media_id))


@router.get("/{media_id}/similar", summary="The items most like this one (stored vectors)")
def similar(
    library: Lib,
    media_id: IdPath,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
    threshold: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    media_type: Annotated[MediaType | None, Query(alias="type")] = None,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    cluster: bool = False,
) -> dict[str, Any]:
    result: dict[str, Any] = plain(
        library.similar(
            media_id,
            top=top,
            threshold=threshold,
            media_type=media_type,
            genre=check_text(genre, "genre"),
            cluster=cluster,
        )
    )
    return result
