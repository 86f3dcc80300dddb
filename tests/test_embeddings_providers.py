"""Embedding providers: the shipped model, Ollama and OpenAI-compatible endpoints."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.config import EmbeddingSettings
from atlas.embeddings.providers import (
    OllamaProvider,
    OpenAIProvider,
    SentenceTransformerProvider,
    get_provider,
)
from atlas.errors import InvalidInput, Unavailable
from conftest import free_port, raised_by


@pytest.mark.slow
def test_default_model_comes_from_the_shipped_package_and_gives_unit_vectors(embedding_model):
    assert embedding_model.model_id == "sentence-transformers:all-MiniLM-L6-v2"
    assert embedding_model.dimension == 384
    vectors = embedding_model.embed(
        ["an astronaut in orbit", "a spaceman circling the earth", "how to bake bread"]
    )
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


@pytest.mark.slow
def test_the_provider_is_loaded_once_per_process(embedding_model):
    again = get_provider(EmbeddingSettings(batch_size=64))
    assert again is embedding_model
    assert again.encoder is embedding_model.encoder
    other = get_provider(EmbeddingSettings(model="/no/such/model"))
    assert other is not embedding_model


def test_model_id_is_known_without_loading_the_model():
    provider = SentenceTransformerProvider("/no/such/model-folder")
    assert provider.model_id == "sentence-transformers:/no/such/model-folder"
    assert provider._model is None


def test_a_model_that_cannot_be_loaded_names_the_setting():
    provider = SentenceTransformerProvider("/no/such/model-folder")
    with pytest.raises(Unavailable, match=r"embedding\.model"):
        provider.embed(["hello"])


def test_empty_texts_are_refused(fake_embedding_server):
    provider = OllamaProvider(
        "qwen3-embedding", base_url=fake_embedding_server.url, timeout_s=5, batch_size=8
    )
    with pytest.raises(InvalidInput, match="empty"):
        provider.embed(["fine", "   "])
    assert fake_embedding_server.requests == []


def test_ollama_posts_to_api_embed_in_batches_and_normalises(fake_embedding_server):
    provider = get_provider(
        EmbeddingSettings(
            provider="ollama",
            ollama_host=fake_embedding_server.url + "/",
            ollama_model="qwen3-embedding",
            batch_size=2,
        )
    )
    assert isinstance(provider, OllamaProvider)
    vectors = provider.embed(["red planet", "blue ocean", "green forest"])
    assert vectors.shape == (3, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    paths = [path for path, _, _ in fake_embedding_server.requests]
    assert paths == ["/api/embed", "/api/embed"]
    bodies = [body for _, body, _ in fake_embedding_server.requests]
    assert bodies[0] == {"model": "qwen3-embedding", "input": ["red planet", "blue ocean"]}
    assert bodies[1]["input"] == ["green forest"]
    expected = np.asarray(fake_embedding_server.vector("blue ocean"), dtype=np.float32)
    assert np.allclose(vectors[1], expected / np.linalg.norm(expected), atol=1e-6)
    assert provider.model_id == "ollama:qwen3-embedding"
    assert provider.dimension == 8


def test_unreachable_ollama_is_unavailable_and_names_the_host_setting():
    port = free_port()
    provider = OllamaProvider(
        "qwen3-embedding", base_url=f"http://127.0.0.1:{port}", timeout_s=5, batch_size=8
    )
    with pytest.raises(Unavailable) as caught:
        provider.embed(["hello"])
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "embedding.ollama_host" in message
    assert "\n" not in message


def test_ollama_error_answer_is_reported_with_its_reason(fake_embedding_server):
    fake_embedding_server.fail_with = (
        404,
        {"error": 'model "nomic" not found, try pulling it first'},
    )
    provider = OllamaProvider(
        "nomic", base_url=fake_embedding_server.url, timeout_s=5, batch_size=8
    )
    with pytest.raises(Unavailable, match=r"HTTP 404: model \"nomic\" not found.*ollama_model"):
        provider.embed(["hello"])


def test_openai_compatible_sends_the_key_and_puts_vectors_back_in_order(fake_embedding_server):
    provider = get_provider(
        EmbeddingSettings(
            provider="openai",
            openai_base_url=fake_embedding_server.url + "/v1",
            openai_model="text-embedding-3-small",
            openai_api_key="sk-test",
        )
    )
    assert isinstance(provider, OpenAIProvider)
    texts = ["one fish", "two fish", "red fish"]
    vectors = provider.embed(texts)
    path, body, headers = fake_embedding_server.requests[0]
    assert path == "/v1/embeddings"
    assert body == {"model": "text-embedding-3-small", "input": texts, "encoding_format": "float"}
    assert headers["Authorization"] == "Bearer sk-test"
    for text, vector in zip(texts, vectors, strict=True):
        expected = np.asarray(fake_embedding_server.vector(text), dtype=np.float32)
        assert np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-6)


def test_unreachable_openai_endpoint_names_the_base_url_setting():
    provider = OpenAIProvider(
        "m", api_key=None, base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=5, batch_size=8
    )
    with pytest.raises(Unavailable, match=r"embedding\.openai_base_url"):
        provider.embed(["hello"])


@pytest.mark.parametrize("provider_class", [OllamaProvider, OpenAIProvider])
def test_an_endpoint_that_accepts_and_never_answers_fails_within_the_timeout(
    silent_server, provider_class
):
    host, port = silent_server
    extra = {"api_key": None} if provider_class is OpenAIProvider else {}
    provider = provider_class(
        "m", base_url=f"http://{host}:{port}", timeout_s=1, batch_size=8, **extra
    )
    raised = raised_by(lambda: provider.embed(["hello"]))
    assert isinstance(raised, Unavailable)
    assert str(raised) == (
        f"{provider.name} at http://{host}:{port} (model 'm') did not answer within 1 s; "
        "check it or raise embedding.request_timeout_s"
    )


def test_http_providers_get_the_configured_timeout_for_connecting_and_reading():
    provider = get_provider(EmbeddingSettings(provider="ollama", request_timeout_s=7.5))
    assert isinstance(provider, OllamaProvider)
    timeout = provider._http().timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (7.5, 7.5, 7.5, 7.5)
