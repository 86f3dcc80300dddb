"""An optional LLM tagger through Ollama (used when ``tagging.ollama_model`` is set).

One ``POST {tagging.ollama_host}/api/chat`` per item, non-streaming, with
``"format": "json"`` and temperature 0. The model is shown the vocabulary and
the item's text and asked for ``{"tags": [{"tag": NAME, "confidence": 0..1}]}``
(a plain list of names is accepted too, each with confidence 0.8). Vocabulary
tags keep the vocabulary's spelling and kind; other suggestions (at most five)
become topics. The source judges every vocabulary tag and its suggestions.

A host that does not answer, or refuses the model, raises ``Unavailable``
naming the setting to change; an answer that is not the JSON asked for gives
no evidence for that item (noted in its result).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from atlas.config import TaggingSettings
from atlas.errors import AtlasError
from atlas.http import Endpoint, json_client, post_json
from atlas.media.tags import clean_tag, normalise_tag
from atlas.tagging.inputs import TagInput
from atlas.tagging.sources import Evidence, SourceResult
from atlas.tagging.vocabulary import Vocabulary

__all__ = ["MAX_FREE_TAGS", "llm_tags"]

MAX_FREE_TAGS = 5
_TEXT_LIMIT = 4000
_DEFAULT_CONFIDENCE = 0.8

_SYSTEM = (
    "You tag items of a media library. Choose the tags that fit the item from the "
    "vocabulary; you may add up to {free} other short topic tags. Answer with JSON only: "
    '{{"tags": [{{"tag": "<name>", "confidence": <0 to 1>}}]}}'
)


def _prompt(vocabulary: Vocabulary, item: TagInput) -> str:
    lines = ["Vocabulary:"]
    lines += [f"- {entry.name} ({entry.kind}): {entry.description}" for entry in vocabulary.entries]
    lines += ["", "Item:", item.text[:_TEXT_LIMIT]]
    return "\n".join(lines)


def llm_tags(
    config: TaggingSettings, vocabulary: Vocabulary, items: Sequence[TagInput]
) -> tuple[dict[int, SourceResult], dict[int, str]]:
    """LLM evidence per item, and notes for items whose answer could not be read."""
    model = config.ollama_model
    assert model is not None
    url = f"{config.ollama_host.rstrip('/')}/api/chat"
    results: dict[int, SourceResult] = {}
    notes: dict[int, str] = {}
    with json_client(config.request_timeout_s) as client:
        for item in items:
            payload = {
                "model": model,
                "stream": False,
                "format": "json",
                "options": {"temperature": 0},
                "messages": [
                    {"role": "system", "content": _SYSTEM.format(free=MAX_FREE_TAGS)},
                    {"role": "user", "content": _prompt(vocabulary, item)},
                ],
            }
            body = _post(client, url, payload, config)
            result = SourceResult("llm", judged={entry.norm for entry in vocabulary.entries})
            try:
                suggestions = _suggestions(body)
            except ValueError as exc:
                notes[item.media_id] = f"the LLM's answer was not usable ({exc})"
                suggestions = []
            free = 0
            for name, confidence in suggestions:
                norm = normalise_tag(name)
                entry = vocabulary.get(norm)
                if entry is None:
                    if free >= MAX_FREE_TAGS:
                        continue
                    free += 1
                result.add(
                    Evidence(
                        tag=entry.name if entry else name,
                        norm=norm,
                        kind=entry.kind if entry else "topic",
                        score=confidence,
                        detail=f"LLM {model} suggested it ({confidence:.2f})",
                    )
                )
            results[item.media_id] = result
    return results, notes


def _post(client: httpx.Client, url: str, payload: dict[str, Any], config: TaggingSettings) -> Any:
    endpoint = Endpoint(
        where=f"Ollama at {config.ollama_host} (model {config.ollama_model!r})",
        timeout_s=config.request_timeout_s,
        timeout_setting="tagging.request_timeout_s",
        unreachable="start it, set tagging.ollama_host, or unset tagging.ollama_model",
        refused="check tagging.ollama_model",
    )
    return post_json(client, url, payload, endpoint)


def _suggestions(body: dict[str, Any]) -> list[tuple[str, float]]:
    message = body.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise ValueError("no message content")
    try:
        answer = json.loads(content)
    except json.JSONDecodeError:
        raise ValueError("not JSON") from None
    raw = answer.get("tags") if isinstance(answer, dict) else answer
    if not isinstance(raw, list):
        raise ValueError("no 'tags' list")
    found: list[tuple[str, float]] = []
    for entry in raw:
        if isinstance(entry, str):
            name, confidence = entry, _DEFAULT_CONFIDENCE
        elif isinstance(entry, dict) and isinstance(entry.get("tag"), str):
            name = entry["tag"]
            value = entry.get("confidence", _DEFAULT_CONFIDENCE)
            confidence = float(value) if isinstance(value, (int, float)) else _DEFAULT_CONFIDENCE
        else:
            continue
        try:
            name = clean_tag(name)
        except AtlasError:
            continue
        found.append((name, min(1.0, max(0.0, confidence))))
    return found
