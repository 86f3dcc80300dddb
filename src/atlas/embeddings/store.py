"""The vector store: ChromaDB, embedded in the data dir or a server.

No ``chroma.host``: a ``PersistentClient`` at ``settings.chroma_path``. With
``chroma.host`` (and ``port``, ``ssl``): an ``HttpClient``. Either way each
embedding model gets its own collection, named from the model id and the vector
dimension (:func:`collection_name`), in cosine space, so vectors of two models
never meet. Vector ids are media ids, so writing a vector again replaces it.

Every request to a Chroma server (connecting, the heartbeat, collections,
writes, queries) is bounded by ``chroma.timeout_s``, so a hung server fails the
task instead of blocking a worker. Every Chroma error a user can act on (a
server that does not answer, a store that cannot be opened) becomes
``Unavailable`` with one clear line.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from atlas.caches import CACHES
from atlas.config import Settings
from atlas.errors import REBUILD_VECTOR_STORE, Unavailable, missing_extra

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = [
    "Neighbour",
    "StoreDamaged",
    "VectorCollection",
    "VectorSource",
    "VectorStore",
    "collection_name",
    "get_store",
]

_SLUG = re.compile(r"[^a-z0-9]+")


class StoreDamaged(Unavailable):
    """The embedded vector store's files are damaged; it must be rebuilt, not retried."""

    transient = False


@dataclass(frozen=True)
class Neighbour:
    """A media item near a query vector."""

    media_id: int
    #: Cosine similarity, -1..1 (1 = same direction).
    similarity: float


class VectorSource(Protocol):
    """What searches read vectors from: a store's collection, or a copy in memory
    (:class:`atlas.embeddings.live.VectorTable`)."""

    def vectors(self, media_ids: Sequence[int]) -> dict[int, Vectors]: ...

    def query(
        self,
        vector: Vectors,
        n: int,
        *,
        media_type: str | None = None,
        genre: str | None = None,
    ) -> list[Neighbour]: ...


def collection_name(prefix: str, model_id: str, dimension: int) -> str:
    """``atlas_media-sentence-transformers-all-minilm-l6-v2-384-1a2b3c4d``.

    Readable, within Chroma's naming rules (3-63 characters of ``[A-Za-z0-9_-]``),
    and unique per model id and dimension thanks to the hash of the full id.
    """
    slug = _SLUG.sub("-", model_id.lower()).strip("-")[:32].strip("-") or "model"
    digest = hashlib.sha256(f"{model_id}|{dimension}".encode()).hexdigest()[:8]
    return f"{prefix}-{slug}-{dimension}-{digest}"


class VectorStore:
    """One Chroma client for the settings' store; collections per model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.chroma.collection
        self._client: Any = None
        self._lock = threading.Lock()
        self._collections: dict[str, VectorCollection] = {}

    @property
    def is_server(self) -> bool:
        return self.settings.chroma.host is not None

    def describe(self) -> str:
        chroma = self.settings.chroma
        if chroma.host is None:
            return f"the embedded vector store in {self.settings.chroma_path}"
        scheme = "https" if chroma.ssl else "http"
        return f"the Chroma server at {scheme}://{chroma.host}:{chroma.port}"

    def _unreachable(self, detail: str) -> Unavailable:
        if self.is_server:
            return Unavailable(
                f"{self.describe()} is not reachable ({detail}); start it, fix chroma.host/"
                "chroma.port/chroma.ssl, or unset chroma.host to use the embedded store"
            )
        if _is_damage(detail):
            return StoreDamaged(
                f"{self.describe()} is damaged ({detail})", repair=REBUILD_VECTOR_STORE
            )
        return Unavailable(f"{self.describe()} cannot be used ({detail}); check the folder")

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        try:
            import chromadb
            from chromadb.config import Settings as ChromaConfig
        except ModuleNotFoundError:
            raise missing_extra("chromadb (the vector store)") from None
        # Telemetry off: Atlas never talks to the internet on its own.
        config = ChromaConfig(anonymized_telemetry=False, allow_reset=False)
        chroma = self.settings.chroma
        with self.errors():
            if chroma.host is None:
                self.settings.chroma_path.mkdir(parents=True, exist_ok=True)
                return chromadb.PersistentClient(
                    path=str(self.settings.chroma_path), settings=config
                )
            host = chroma.host
            self._ping()
            client = self._within_timeout(
                lambda: chromadb.HttpClient(
                    host=host, port=chroma.port, ssl=chroma.ssl, settings=config
                )
            )
            _bound_requests(client, chroma.timeout_s)
            return client

    def _within_timeout(self, make: Callable[[], Any]) -> Any:
        """``make()``, or ``Unavailable`` if the server has not answered within the timeout.

        Chroma's ``HttpClient`` asks the server for its identity, tenant and
        database while it is built, before its requests can be given a timeout;
        building it in a helper thread bounds those requests too. A thread left
        waiting on a hung server ends when the server answers or drops the
        connection.
        """
        outcome: dict[str, Any] = {}

        def build() -> None:
            try:
                outcome["client"] = make()
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=build, name="atlas-chroma-connect", daemon=True)
        thread.start()
        thread.join(self.settings.chroma.timeout_s)
        if thread.is_alive():
            raise self._timed_out()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["client"]

    def _ping(self) -> None:
        chroma = self.settings.chroma
        scheme = "https" if chroma.ssl else "http"
        url = f"{scheme}://{chroma.host}:{chroma.port}/api/v2/heartbeat"
        try:
            response = httpx.get(url, timeout=chroma.timeout_s)
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except httpx.HTTPError as exc:
            raise self._unreachable(_first_line(exc) or type(exc).__name__) from None
        if response.status_code >= 400:
            raise self._unreachable(f"HTTP {response.status_code} from {url}")

    def _timed_out(self) -> Unavailable:
        return Unavailable(
            f"{self.describe()} did not answer within {self.settings.chroma.timeout_s:g} s; "
            "check that it is running and not overloaded, or raise chroma.timeout_s"
        )

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn Chroma and connection failures into ``Unavailable``."""
        try:
            yield
        except Unavailable:
            raise
        except Exception as exc:
            if self.is_server and isinstance(exc, httpx.TimeoutException):
                raise self._timed_out() from None
            if (self.is_server and _is_connection_error(exc)) or (
                not self.is_server and _is_store_error(exc)
            ):
                raise self._unreachable(_first_line(exc) or type(exc).__name__) from None
            raise

    def check(self) -> None:
        """Raise ``Unavailable`` unless the store answers."""
        with self.errors():
            self.client.heartbeat()

    def check_readable(self) -> None:
        """Read every collection once: ``StoreDamaged`` if the files are damaged."""
        with self.errors():
            for raw in self.client.list_collections():
                self.client.get_collection(raw.name, embedding_function=None).count()

    def set_aside(self) -> Path:
        """Move the embedded store's folder aside (kept, renamed) so a new one can be built.

        Returns the folder's new name, ``chroma.damaged-<UTC time>`` next to it. The
        process's client of the old store is closed first. Only for the embedded store.
        """
        if self.is_server:
            raise ValueError("a Chroma server's store cannot be set aside from here")
        folder = self.settings.chroma_path
        with self._lock:
            self._client = None
            self._collections.clear()
            _forget_embedded_client(folder)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            target = folder.with_name(f"{folder.name}.damaged-{stamp}")
            suffix = 1
            while target.exists():
                suffix += 1
                target = folder.with_name(f"{folder.name}.damaged-{stamp}-{suffix}")
            try:
                folder.rename(target)
            except OSError as exc:
                raise Unavailable(
                    f"{self.describe()} is damaged and cannot be moved aside to {target} "
                    f"({exc.strerror}); move or delete the folder, then embed everything again"
                ) from None
        return target

    def collection(
        self, model_id: str, dimension: int, *, create: bool = True
    ) -> VectorCollection | None:
        """The collection of ``model_id``; ``None`` if it does not exist and not ``create``."""
        name = collection_name(self.prefix, model_id, dimension)
        cached = self._collections.get(name)
        if cached is not None:
            return cached
        with self.errors():
            if create:
                raw = self.client.get_or_create_collection(
                    name,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"atlas_model": model_id, "atlas_dimension": dimension},
                    embedding_function=None,
                )
            else:
                client = self.client  # a store that cannot be opened is not "no collection"
                try:
                    raw = client.get_collection(name, embedding_function=None)
                except Exception as exc:
                    if _is_connection_error(exc):
                        raise
                    return None
        found = VectorCollection(self, raw, model_id=model_id, dimension=dimension)
        self._collections[name] = found
        return found

    def collections_of(self, model_id: str) -> list[VectorCollection]:
        """Every collection holding vectors of ``model_id`` (any dimension)."""
        with self.errors():
            found = []
            for raw in self.client.list_collections():
                meta = raw.metadata or {}
                if raw.name.startswith(f"{self.prefix}-") and meta.get("atlas_model") == model_id:
                    dimension = int(meta.get("atlas_dimension", 0))
                    collection = self.collection(model_id, dimension, create=False)
                    if collection is not None:
                        found.append(collection)
        return found


class VectorCollection:
    """The vectors of one embedding model, keyed by media id."""

    def __init__(self, store: VectorStore, raw: Any, *, model_id: str, dimension: int) -> None:
        self.store = store
        self.raw = raw
        self.name: str = raw.name
        self.model_id = model_id
        self.dimension = dimension

    def upsert(
        self, media_ids: Sequence[int], vectors: Vectors, metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Write vectors (replacing any with the same media id); idempotent."""
        if not media_ids:
            return
        if vectors.shape != (len(media_ids), self.dimension):
            raise ValueError(
                f"expected {len(media_ids)}x{self.dimension} vectors, got {vectors.shape}"
            )
        with self.store.errors():
            step = self.store.client.get_max_batch_size()
            for start in range(0, len(media_ids), step):
                end = start + step
                self.raw.upsert(
                    ids=[str(media_id) for media_id in media_ids[start:end]],
                    embeddings=vectors[start:end],
                    metadatas=[
                        {
                            **_clean_metadata(meta),
                            "model": self.model_id,
                            "dimension": self.dimension,
                        }
                        for meta in metadatas[start:end]
                    ],
                )

    def delete(self, media_ids: Sequence[int]) -> None:
        if not media_ids:
            return
        with self.store.errors():
            self.raw.delete(ids=[str(media_id) for media_id in media_ids])

    def count(self) -> int:
        with self.store.errors():
            return int(self.raw.count())

    def ids(self) -> set[int]:
        """Every media id that has a vector here."""
        result: set[int] = set()
        with self.store.errors():
            total = int(self.raw.count())
            page = 10_000
            for offset in range(0, total, page):
                got = self.raw.get(include=[], limit=page, offset=offset)
                result.update(int(value) for value in got["ids"])
        return result

    def vectors(self, media_ids: Sequence[int]) -> dict[int, Vectors]:
        """The stored vectors of these media ids (missing ones are left out)."""
        import numpy as np

        if not media_ids:
            return {}
        with self.store.errors():
            got = self.raw.get(ids=[str(m) for m in media_ids], include=["embeddings"])
        return {
            int(key): np.asarray(vector, dtype=np.float32)
            for key, vector in zip(got["ids"], got["embeddings"], strict=True)
        }

    def present(self, media_ids: Sequence[int]) -> set[int]:
        """Which of ``media_ids`` have a vector here."""
        if not media_ids:
            return set()
        with self.store.errors():
            got = self.raw.get(ids=[str(m) for m in media_ids], include=[])
        return {int(key) for key in got["ids"]}

    def metadata(self, media_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not media_ids:
            return {}
        with self.store.errors():
            got = self.raw.get(ids=[str(m) for m in media_ids], include=["metadatas"])
        return {
            int(key): dict(meta or {})
            for key, meta in zip(got["ids"], got["metadatas"], strict=True)
        }

    def all_vectors(self) -> tuple[list[int], Vectors]:
        """Every (media id, vector), in media id order."""
        import numpy as np

        ids: list[int] = []
        rows: list[Any] = []
        with self.store.errors():
            total = int(self.raw.count())
            page = 5_000
            for offset in range(0, total, page):
                got = self.raw.get(include=["embeddings"], limit=page, offset=offset)
                ids.extend(int(value) for value in got["ids"])
                rows.extend(got["embeddings"])
        if not ids:
            return [], np.zeros((0, self.dimension), dtype=np.float32)
        matrix = np.asarray(rows, dtype=np.float32)
        order = np.argsort(np.asarray(ids))
        return [ids[i] for i in order], matrix[order]

    def query(
        self,
        vector: Vectors,
        n: int,
        *,
        media_type: str | None = None,
        genre: str | None = None,
    ) -> list[Neighbour]:
        """The ``n`` nearest media to ``vector``, most similar first, filtered by metadata."""
        if n < 1:
            return []
        conditions: list[dict[str, Any]] = []
        if media_type is not None:
            conditions.append({"media_type": media_type})
        if genre is not None:
            conditions.append({"genres": {"$contains": genre}})
        where: dict[str, Any] | None = None
        if len(conditions) == 1:
            where = conditions[0]
        elif conditions:
            where = {"$and": conditions}
        with self.store.errors():
            # Chroma returns fewer than n_results when fewer match.
            got = self.raw.query(
                query_embeddings=vector.reshape(1, -1),
                n_results=n,
                where=where,
                include=["distances"],
            )
        return [
            Neighbour(media_id=int(key), similarity=1.0 - float(distance))
            for key, distance in zip(got["ids"][0], got["distances"][0], strict=True)
        ]


def _bound_requests(client: Any, timeout_s: float) -> None:
    """Give every later request of a Chroma ``HttpClient`` a timeout.

    Chroma (1.x) builds its ``httpx.Client`` with ``timeout=None`` and has no
    setting for it, so a server that accepts a request and never answers (a
    stopped process, a full disk) would block the caller forever. The session is
    Chroma's private attribute; should a release rename it, failing here is
    better than waiting forever later.
    """
    session = getattr(getattr(client, "_server", None), "_session", None)
    if not isinstance(session, httpx.Client):
        raise RuntimeError(
            "cannot set a timeout on this chromadb version's HTTP client "
            "(no httpx session at client._server._session)"
        )
    session.timeout = httpx.Timeout(timeout_s)


def _clean_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    # Chroma refuses None values and empty lists.
    return {key: value for key, value in meta.items() if value is not None and value != []}


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    text = str(exc).lower()
    return "could not connect" in text or "connection refused" in text


def _is_damage(detail: str) -> bool:
    """Whether an embedded-store error says its files are damaged (SQLite codes 11 and 26)."""
    text = detail.lower()
    return any(sign in text for sign in ("malformed", "not a database", "(code: 11)", "(code: 26)"))


def _forget_embedded_client(folder: Path) -> None:
    """Stop and drop chromadb's cached system for ``folder``.

    chromadb keeps one ``System`` per folder for the process, cached before it
    starts, so a store that failed to open would be handed out again, broken,
    to the next client of that folder.
    """
    try:
        from chromadb.api.shared_system_client import SharedSystemClient
    except ModuleNotFoundError:  # pragma: no cover - no chromadb, no client to forget
        return
    systems = getattr(SharedSystemClient, "_identifier_to_system", {})
    system = systems.pop(str(folder), None)
    getattr(SharedSystemClient, "_identifier_to_refcount", {}).pop(str(folder), None)
    if system is not None:
        with contextlib.suppress(Exception):  # a half-started system may not stop cleanly
            system.stop()


def _is_store_error(exc: BaseException) -> bool:
    """A failure of the embedded store itself (disk, permissions, a damaged folder)."""
    return isinstance(exc, OSError) or type(exc).__module__.startswith("chromadb")


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


# --- one per process and configuration (kept in atlas.caches) -----------------------


def get_store(settings: Settings) -> VectorStore:
    """The vector store of these settings; one client per process and location."""
    chroma = settings.chroma
    key = (
        (str(settings.chroma_path),)
        if chroma.host is None
        else (chroma.host, chroma.port, chroma.ssl)
    ) + (chroma.collection,)
    return CACHES.stores.get(key, lambda: VectorStore(settings))
