"""JSON over HTTP to a model host (Ollama, an OpenAI-compatible endpoint), one way.

The embedding providers, the LLM tagger and the planning model each post JSON to
a host the user runs. They share :func:`json_client` (one bound for connecting
and for each wait on the answer, so a host that accepts and never answers fails
instead of blocking a worker) and :func:`post_json`, which turns every failure
into ``Unavailable`` with one line naming what to change: the timeout setting
when the host is slow, the host setting when it does not answer, the model
settings when it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from atlas.errors import Unavailable

__all__ = ["Endpoint", "json_client", "post_json"]


@dataclass(frozen=True)
class Endpoint:
    """A host as the error lines name it, and what a user changes when it fails."""

    #: ``Ollama at http://127.0.0.1:11434 (model 'llama3.2')``.
    where: str
    timeout_s: float
    #: The setting that bounds each wait, e.g. ``tagging.request_timeout_s``.
    timeout_setting: str
    #: What to do when the host cannot be reached, e.g. ``start it or set X``.
    unreachable: str
    #: What to check when the host refuses the request, e.g. ``check X``.
    refused: str


def json_client(timeout_s: float, headers: dict[str, str] | None = None) -> httpx.Client:
    """A client whose every request (connect, each read) is bounded by ``timeout_s``."""
    return httpx.Client(timeout=timeout_s, headers=headers)


def post_json(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    endpoint: Endpoint,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST ``payload`` as JSON; the answer's JSON object.

    Raises ``Unavailable`` when the host does not answer in time, cannot be
    reached, refuses (HTTP 4xx/5xx, with the host's own error message when it
    gives one) or answers with something other than a JSON object.
    """
    where = endpoint.where
    try:
        response = client.post(url, json=payload, headers=headers)
    except httpx.TimeoutException:
        raise Unavailable(
            f"{where} did not answer within {endpoint.timeout_s:g} s; "
            f"check it or raise {endpoint.timeout_setting}"
        ) from None
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"{where} is not reachable ({_first_line(exc) or type(exc).__name__}); "
            f"{endpoint.unreachable}"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        detail = _error_detail(body) or response.reason_phrase
        raise Unavailable(
            f"{where} refused the request (HTTP {response.status_code}: {detail}); "
            f"{endpoint.refused}"
        )
    if body is None:
        raise Unavailable(f"{where} answered with something that is not JSON")
    if not isinstance(body, dict):
        raise Unavailable(f"{where} answered with JSON that is not an object")
    return body


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _error_detail(body: Any) -> str | None:
    """The host's own reason: Ollama's ``{"error": "..."}`` or OpenAI's
    ``{"error": {"message": "..."}}``."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str) and error:
            return error
    return None
