"""What every route shares: the Library of the app, id parameters, text checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from atlas.db import MAX_ID
from atlas.errors import InvalidInput
from atlas.library import Library

__all__ = ["IdPath", "Lib", "check_text", "get_library"]


def get_library(request: Request) -> Library:
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
