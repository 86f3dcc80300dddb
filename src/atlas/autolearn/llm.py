"""A chat model for planning: Ollama's ``/api/chat`` or an OpenAI-compatible endpoint.

One non-streaming request per plan, temperature 0, JSON asked for. Every request
has ``autolearn.request_timeout_s`` for connecting and for each wait on the answer
(the same ``httpx`` pattern as the embedding providers and the LLM tagger), so a
host that accepts and never answers fails instead of hanging. A host that does
not answer or refuses raises ``Unavailable`` naming the setting to change.
"""

from __future__ import annotations

from typing import Any

import httpx

from atlas.config import AutolearnSettings
from atlas.errors import Unavailable

__all__ = ["NOT_CONFIGURED", "chat", "configured", "describe_model"]

NOT_CONFIGURED = (
    "no planning model is configured; set autolearn.ollama_model (an Ollama model) or "
    "autolearn.openai_model (a model behind an OpenAI-compatible endpoint, with "
    "autolearn.openai_base_url)"
)


def configured(config: AutolearnSettings) -> bool:
    return bool(config.ollama_model or config.openai_model)


def describe_model(config: AutolearnSettings) -> str:
    if config.ollama_model:
        return f"Ollama at {config.ollama_host} (model {config.ollama_model!r})"
    return f"the endpoint at {config.openai_base_url} (model {config.openai_model!r})"


def chat(config: AutolearnSettings, system: str, user: str) -> str:
    """The model's answer text to one system + user message."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    headers: dict[str, str] = {}
    if config.ollama_model:
        url = f"{config.ollama_host.rstrip('/')}/api/chat"
        payload: dict[str, Any] = {
            "model": config.ollama_model,
            "stream": False,
            "format": "json",
            "options": {"temperature": 0},
            "messages": messages,
        }
        setting = "autolearn.ollama_host"
    else:
        url = f"{config.openai_base_url.rstrip('/')}/chat/completions"
        payload = {
            "model": config.openai_model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": messages,
        }
        if config.openai_api_key:
            headers["Authorization"] = f"Bearer {config.openai_api_key}"
        setting = "autolearn.openai_base_url"
    body = _post(config, url, payload, headers, setting)
    content: Any = None
    if config.ollama_model:
        message = body.get("message")
        content = message.get("content") if isinstance(message, dict) else None
    else:
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise Unavailable(f"{describe_model(config)} answered without a message")
    return content


def _post(
    config: AutolearnSettings,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    setting: str,
) -> dict[str, Any]:
    where = describe_model(config)
    try:
        with httpx.Client(timeout=config.request_timeout_s) as client:
            response = client.post(url, json=payload, headers=headers)
    except httpx.TimeoutException:
        raise Unavailable(
            f"{where} did not answer within {config.request_timeout_s:g} s; "
            "check it or raise autolearn.request_timeout_s"
        ) from None
    except httpx.HTTPError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unavailable(
            f"{where} is not reachable ({detail}); start it or set {setting}"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            error = error.get("message")
        reason = error if isinstance(error, str) and error else response.reason_phrase
        raise Unavailable(
            f"{where} refused the request (HTTP {response.status_code}: {reason}); "
            "check the autolearn model settings"
        )
    if not isinstance(body, dict):
        raise Unavailable(f"{where} answered with something that is not JSON")
    return body
