"""``create_app``: the FastAPI app of ``atlas serve`` (JSON under /api/v1, and the pages).

Errors leave as one JSON object ``{"error": MESSAGE, "status": CODE}`` (or a
page that says it): an ``AtlasError`` with its HTTP status, a request that
fails validation with 422, a database that is locked or gone with 503.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException

from atlas import __version__
from atlas.api import (
    pages,
    routes_autolearn,
    routes_feedback,
    routes_media,
    routes_rules,
    routes_tasks,
)
from atlas.api.models import ERROR_RESPONSES
from atlas.api.security import MAX_BODY_BYTES, BodyLimit, Guard, Security, error
from atlas.config import Settings
from atlas.db import explain_database_error
from atlas.errors import AtlasError
from atlas.library import Library, open_library

__all__ = ["PROCESS_ENV", "REQUEST_THREADS", "app_from_environment", "create_app", "process_setup"]

log = logging.getLogger(__name__)
_HERE = Path(__file__).parent


#: Requests handled at once (each route runs in a thread; more wait their turn).
REQUEST_THREADS = 8


def create_app(
    library: Library,
    security: Security | None = None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    threads: int = REQUEST_THREADS,
    owns_library: bool = False,
    warm: bool = False,
) -> FastAPI:
    """The app serving ``library``; ``security.token`` set: every request needs it.

    ``owns_library``: the app closes the library when it shuts down (a server
    process that opened it for the app alone). ``warm``: the app loads the word
    index, the vectors and the embedding model before it takes requests, so the
    first search does not wait for them (each server process loads its own).

    ``threads`` bounds how many requests run at once. The routes are CPU work
    under one interpreter lock, so more threads than a few per core only make
    every request slower (and contend for database connections and locks);
    requests beyond it wait their turn in arrival order.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    security = security or Security()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Starlette runs sync routes through anyio's default limiter (40 threads).
        import anyio.to_thread  # fastapi's dependency

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if warm:
            for problem in await anyio.to_thread.run_sync(library.warm_up):
                log.warning("atlas serve: not loaded before the first request: %s", problem)
            # What is loaded by now (the model, PyTorch, the indexes: about 500,000
            # objects) stays for the life of the process: leave it out of the garbage
            # collector's full passes, each of which stopped every request for ~0.2 s.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if owns_library:
                library.atlas.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Atlas",
        version=__version__,
        description="The HTTP API of Atlas: browse, search and correct a media library; "
        "every correction is recorded as feedback that Atlas learns rules from.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    # A server keeps running while workers embed: it reads the vectors from a copy in
    # memory kept current from the change log, which sees every process's writes.
    library.live_vectors = True
    app.state.library = library
    app.state.security = security
    app.add_middleware(Guard, security=security)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    for router in (
        routes_media.router,
        routes_feedback.router,
        routes_rules.router,
        routes_tasks.router,
        routes_autolearn.router,
    ):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    _errors(app)
    return app


def _answer(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return error(status, message)
    return pages.error_page(request, status, message)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(AtlasError)
    async def atlas_error(request: Request, exc: AtlasError) -> Response:
        return _answer(request, exc.http_status, api_words(str(exc)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _answer(request, 422, describe_validation(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _answer(request, exc.status_code, str(exc.detail))

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> Response:
        detail = str(exc.orig).splitlines()[0] if exc.orig else "unavailable"
        return _answer(request, 503, f"database error: {detail}")

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> Response:
        explained = explain_database_error(exc)
        if explained is None:
            log.exception("database error", exc_info=exc)
            return _answer(request, 500, "internal error (database); see the server log")
        return _answer(request, explained.http_status, explained.message)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("internal error", exc_info=exc)
        return _answer(request, 500, f"internal error: {type(exc).__name__}; see the server log")


_PARAMETER = re.compile(r"`([a-z][a-z_]*)`")


def api_words(message: str) -> str:
    """A service message in the API's words: an input named in backticks (`genre`) is the
    field of the same name."""
    return _PARAMETER.sub(lambda match: match.group(1), message)


def describe_validation(errors: Any) -> str:
    """The first validation error in one line: where, and what is wrong."""
    problems = []
    for item in list(errors)[:3]:
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        message = str(item.get("msg", "invalid"))
        if item.get("type") == "json_invalid":
            return "the request body is not valid JSON"
        problems.append(f"{where}: {message}")
    return "; ".join(problems) or "invalid request"


# --- several server processes on one port ----------------------------------------------

#: How ``atlas serve --processes N`` hands each server process its setup (JSON).
PROCESS_ENV = "ATLAS_SERVE_PROCESS"


def process_setup(settings: Settings, token: str | None, threads: int, warm: bool) -> str:
    """The setup of a server process, for :data:`PROCESS_ENV`."""
    return json.dumps(
        {"settings": settings.model_dump_json(), "token": token, "threads": threads, "warm": warm}
    )


def app_from_environment() -> FastAPI:
    """The app of one of several server processes (uvicorn's factory).

    The settings come whole from the command that started the processes, which
    has already applied the migrations; each process opens its own library (its
    own database connections, lexical index and in-memory vectors, all kept
    current from the change log) and closes it when it stops.
    """
    setup = json.loads(os.environ[PROCESS_ENV])
    library = open_library(Settings.model_validate_json(setup["settings"]), migrate=False)
    security = Security(token=setup["token"])
    threads, warm = int(setup["threads"]), bool(setup["warm"])
    return create_app(library, security, threads=threads, owns_library=True, warm=warm)
