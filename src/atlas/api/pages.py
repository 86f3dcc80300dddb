"""The web pages of ``atlas serve``: server-rendered templates and one plain JS module.

No front-end build: Jinja2 renders each page from the same ``Library`` calls the
JSON API makes, and ``static/app.js`` sends the user's edits to that API (with
the page's CSRF token), seeks the player from the transcript and follows tasks
live through server-sent events.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from atlas.api.deps import IdPath, Lib, check_text
from atlas.api.security import CSRF_COOKIE, SESSION_COOKIE, Security, cookie_options
from atlas.db import MAX_ID
from atlas.errors import AtlasError

__all__ = ["error_page", "router"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
# The templates ship with Atlas: no looking for changed files on every page.
templates.env.auto_reload = False
PAGE = 24


def _replace_page(params: Any, page: int) -> str:
    """The query string of this page of the library with another page number."""
    return urlencode([*((k, v) for k, v in params.multi_items() if k != "page"), ("page", page)])


templates.env.filters["replace_page"] = _replace_page


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page, with the CSRF token its scripts send back (cookie set when new)."""
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request, name, {"csrf": token, **context}, status_code=status
    )
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, **cookie_options())
    return response


def error_page(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", status=status, status_code=status, message=message)


def _tried(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """A call whose failure the page shows in its place instead of failing the page."""
    try:
        return call(*args, **kwargs), None
    except AtlasError as exc:
        return None, str(exc)


# --- library --------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def library_page(
    request: Request,
    library: Lib,
    q: Annotated[str | None, Query(max_length=1000)] = None,
    mode: Annotated[str, Query(pattern="^(vector|lexical|hybrid)$")] = "hybrid",
    media_type: Annotated[str | None, Query(alias="type", max_length=10)] = None,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    cluster: Annotated[str | None, Query(max_length=12)] = None,
    sort: Annotated[str, Query(pattern="^(id|title|year|rating|added)$")] = "id",
    view: Annotated[str, Query(pattern="^(grid|list)$")] = "grid",
    page: Annotated[int, Query(ge=1, le=MAX_ID // PAGE)] = 1,
) -> Response:
    q = (check_text(q, "q") or "").strip()
    media_type = media_type or None
    if media_type is not None and media_type not in ("video", "audio", "image", "other"):
        media_type = None
    genre = (check_text(genre, "genre") or "").strip() or None
    tag = (check_text(tag, "tag") or "").strip() or None
    cluster_no = int(cluster) if cluster and cluster.isdigit() and int(cluster) <= MAX_ID else None
    results = items = None
    problem = None
    total = 0
    if q:
        results, problem = _tried(
            library.search, q, mode=mode, top=PAGE, media_type=media_type, genre=genre
        )
    else:
        items, problem = _tried(
            library.media_page,
            media_type=media_type,
            genre=genre,
            tag=tag,
            cluster=cluster_no,
            sort=sort,
            descending=sort in ("year", "rating", "added"),
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        total = items.total if items is not None else 0
    return render(
        request,
        "library.html",
        q=q,
        mode=mode,
        media_type=media_type or "",
        genre=genre or "",
        tag=tag or "",
        cluster=cluster_no,
        clusters=library.clusters(),
        sort=sort,
        view=view,
        page=page,
        pages=max(1, -(-total // PAGE)),
        total=total,
        results=results,
        items=items,
        problem=problem,
    )


# --- one item ---------------------------------------------------------------------------


@router.get("/media/{media_id}", response_class=HTMLResponse)
def media_page(request: Request, library: Lib, media_id: IdPath) -> Response:
    detail = library.media(media_id)
    playable, file_problem = _tried(library.file_of, detail.media)
    # The detail says whether there is a transcript; only then read its segments.
    transcript = _tried(library.transcript, media_id)[0] if detail.transcript else None
    similar, similar_problem = _tried(library.similar, media_id, top=8)
    return render(
        request,
        "media.html",
        item=detail.media,
        tags=detail.tags,
        user_tags=", ".join(tag.tag for tag in detail.tags),
        sidecars=detail.sidecars,
        playable=playable is not None,
        file_problem=file_problem,
        transcript=transcript,
        similar=similar,
        similar_problem=similar_problem,
        feedback=library.feedback(media_id=media_id, limit=20),
        applications=library.applications(media_id=media_id, limit=20),
    )


# --- rules, feedback, analytics, tasks ---------------------------------------------------


@router.get("/rules", response_class=HTMLResponse)
def rules_page(request: Request, library: Lib) -> Response:
    return render(
        request,
        "rules.html",
        rules=library.rules(),
        applications=library.applications(limit=50),
    )


@router.get("/feedback", response_class=HTMLResponse)
def feedback_page(request: Request, library: Lib) -> Response:
    return render(request, "feedback.html", rows=library.feedback(limit=200))


@router.get("/analytics", response_class=HTMLResponse)
def analytics_page(
    request: Request,
    library: Lib,
    days: Annotated[int, Query(ge=1, le=365)] = 14,
    hours: Annotated[int, Query(ge=1, le=24 * 365)] = 24,
) -> Response:
    summary = library.metrics(hours=hours).to_dict()
    trends = library.trends(days=days).to_dict()
    bottlenecks = library.bottlenecks(hours=hours).to_dict()
    overall = trends.get("overall", {}).get("days", [])
    charts = [
        _chart("Success rate per day", overall, "success_rate", scale=100, unit="%"),
        _chart("Median duration per day (ms)", overall, "p50_ms"),
        _chart("Runs per day", overall, "runs"),
    ]
    return render(
        request,
        "analytics.html",
        summary=summary,
        trends=trends,
        bottlenecks=bottlenecks,
        charts=charts,
        days=days,
        hours=hours,
    )


def _chart(
    title: str, days: list[dict[str, Any]], key: str, *, scale: float = 1, unit: str = ""
) -> dict[str, Any]:
    """Bars of one figure per day, scaled to the tallest (drawn as inline SVG)."""
    values = [(day["day"], (day.get(key) or 0) * scale) for day in days]
    top = max((value for _, value in values), default=0) or 1
    return {
        "title": title,
        "unit": unit,
        "bars": [
            {"day": day, "value": value, "height": round(100 * value / top, 1)}
            for day, value in values
        ],
    }


@router.get("/tasks", response_class=HTMLResponse)
def tasks_page(request: Request, library: Lib) -> Response:
    return render(request, "tasks.html", tasks=library.tasks(limit=50))


# --- signing in ---------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: Annotated[str, Query(max_length=2000)] = "/") -> Response:
    return render(request, "login.html", next=_local(next), problem=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Take the token from the form; keep it in an http-only, same-site cookie."""
    security: Security = request.app.state.security
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    target = _local((form.get("next") or ["/"])[0])
    if not security.check_token(token):
        return render(request, "login.html", status=401, next=target, problem="wrong token")
    response = RedirectResponse(target, status_code=303)
    if security.token is not None:
        response.set_cookie(SESSION_COOKIE, security.token, **cookie_options())
    return response


def _local(target: str) -> str:
    """Only a path on this site (never another site) to go on to after signing in."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
