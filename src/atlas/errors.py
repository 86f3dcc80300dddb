"""The exceptions Atlas raises on purpose.

Every error a user can cause or fix is an ``AtlasError`` with a message that says
what went wrong and what to do about it. The interfaces (CLI, API) translate them
at the edge: one line on stderr and a non-zero exit, or an HTTP 4xx/5xx.
Nothing else in Atlas catches exceptions broadly.
"""

from __future__ import annotations

__all__ = [
    "CHECK_VECTOR_STORE",
    "EMBED_MISSING",
    "REBUILD_VECTOR_STORE",
    "AtlasError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "Unavailable",
    "invalid",
    "missing_extra",
]

# Repairs an error can point to, in the domain's words. A service names the
# repair; each interface says how to do it (the CLI: which command to run).
#: Move the damaged vector store aside and embed every item again into a new one.
REBUILD_VECTOR_STORE = "rebuild the vector store from the database"
#: Compare the vector store with the database and embed again what it lacks.
CHECK_VECTOR_STORE = "check the vector store against the database"
#: Embed every item that has no vector with the configured model yet.
EMBED_MISSING = "embed what is not embedded yet"


class AtlasError(Exception):
    """Root of every error Atlas raises for a user to read."""

    #: Process exit code used by the CLI.
    exit_code = 1
    #: HTTP status used by the API.
    http_status = 500
    #: Whether retrying the same work later may succeed (used by the dispatcher).
    transient = False

    def __init__(self, message: str, *, repair: str | None = None) -> None:
        super().__init__(message)
        #: What went wrong. An input it names is written as its domain name in
        #: backticks ("`top` must be at most 100"); each interface names it its
        #: own way (the CLI by its flag, the API by its field).
        self.message = message
        #: The repair that fixes it, if there is one (``REBUILD_VECTOR_STORE``, ...).
        self.repair = repair

    def __str__(self) -> str:
        return self.message if self.repair is None else f"{self.message}; {self.repair}"


class InvalidInput(AtlasError):
    """The input is wrong: a bad flag value, a malformed file, a non-media file."""

    exit_code = 2
    http_status = 422


class NotFound(AtlasError):
    """Something named by the user does not exist: a media id, a path, a rule."""

    exit_code = 3
    http_status = 404


class Conflict(AtlasError):
    """The request clashes with the current state (a target file exists, ...)."""

    exit_code = 4
    http_status = 409


class Unavailable(AtlasError):
    """A resource Atlas needs is not there or not answering right now.

    A locked database, an unreachable Chroma server or Ollama host, a missing
    model, a missing ``ffprobe``. Retrying later may succeed.
    """

    exit_code = 5
    http_status = 503
    transient = True


def invalid(parameter: str, problem: str) -> InvalidInput:
    """``InvalidInput`` about one input, named by its domain name: "`top` must be at least 1"."""
    return InvalidInput(f"`{parameter}` {problem}")


def missing_extra(what: str, extra: str = "ml", *, alternative: str | None = None) -> Unavailable:
    """``Unavailable`` for a feature whose optional packages are not installed.

    ``what`` names the missing part (``"chromadb (the vector store)"``); the
    message says which extra of Atlas brings it, as a command to copy.
    """
    message = (
        f"{what} is not installed; install Atlas with the '{extra}' extra: "
        f"pip install 'atlas-media[{extra}]'"
    )
    return Unavailable(f"{message}, or {alternative}" if alternative else message)
