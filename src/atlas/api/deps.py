"""What every route shares: the Library of the app, id parameters, text checks, and
``JSONRoute``, how the API's routes answer."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute

from atlas.db import MAX_ID
from atlas.errors import InvalidInput
from atlas.library import Library

__all__ = ["IdPath", "JSONRoute", "Lib", "check_text", "get_library", "json_response"]


async def get_library(request: Request) -> Library:
    # async: FastAPI runs a plain function dependency in a thread of its own, one more
    # hand-off (and one more wait for a free thread) on every request.
    library: Library = request.app.state.library
    return library


Lib = Annotated[Library, Depends(get_library)]
#: An id in a path: a whole number the database can hold (else 422).
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="An id (1 to 2^31-1).")]
Limit = Annotated[int, Query(ge=1, le=500, description="Page length.")]


def check_text(value: str | None, name: str) -> str | None:
    """A text parameter without NUL or other control characters (tab and newline aside)."""
    if value is None:
        return None
    if any(ord(char) < 32 and char not in "\t\n\r" for char in value) or "\x7f" in value:
        raise InvalidInput(f"{name} contains a control character")
    return value


def plain(value: Any) -> Any:
    """A service result as JSON-ready data (its ``to_dict``)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def json_response(content: Any, status_code: int = 200) -> Response:
    """``content`` as a JSON answer (dates as ISO 8601; other types as FastAPI writes them)."""
    body = orjson.dumps(content, default=jsonable_encoder, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status_code, media_type="application/json")


class JSONRoute(APIRoute):
    """An API route whose plain-function endpoint writes its JSON answer in its own thread.

    FastAPI would check a returned dict against the return annotation in another
    thread hand-off and then serialise it on the event loop, where it holds up
    every other request of the process. The annotation still documents the answer
    in the OpenAPI document. A ``Response`` parameter's status code and headers are
    kept; a returned ``Response`` is passed through.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _answering_json(endpoint, kwargs.get("status_code"))
        super().__init__(path, endpoint, **kwargs)


def _answering_json(endpoint: Callable[..., Any], status_code: int | None) -> Callable[..., Any]:
    given = [
        name
        for name, parameter in inspect.signature(endpoint, eval_str=True).parameters.items()
        if parameter.annotation is Response
    ]

    @functools.wraps(endpoint)
    def answer(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        if isinstance(result, Response):
            return result
        response = json_response(result, status_code or 200)
        for name in given:
            set_by_route: Response = kwargs[name]
            if set_by_route.status_code:
                response.status_code = set_by_route.status_code
            for key, value in set_by_route.headers.items():
                if key not in ("content-length", "content-type"):
                    response.headers[key] = value
        return response

    return answer
