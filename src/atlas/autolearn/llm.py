"""A chat model for planning: Ollama's ``/api/chat`` or an OpenAI-compatible endpoint.

One non-streaming request per plan, temperature 0, JSON asked for. Every request
has ``autolearn.request_timeout_s`` for connecting and for each wait on the answer
(``atlas.http``, as for the embedding providers and the LLM tagger), so a
host that accepts and never answers fails instead of hanging. A host that does
not answer or refuses raises ``Unavailable`` naming the setting to change.
"""

from __future__ import annotations

from typing import Any

from atlas.config import AutolearnSettings
from atlas.errors import Unavailable
from atlas.http import Endpoint, json_client, post_json

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
    endpoint = Endpoint(
        where=describe_model(config),
        timeout_s=config.request_timeout_s,
        timeout_setting="autolearn.request_timeout_s",
        unreachable=f"start it or set {setting}",
        refused="check the autolearn model settings",
    )
    with json_client(config.request_timeout_s) as client:
        return post_json(client, url, payload, endpoint, headers)
