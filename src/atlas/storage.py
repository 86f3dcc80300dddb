"""Move a library to the scaled-out stores: its database to PostgreSQL, its vectors to a
Chroma server.

:func:`migrate_store` copies everything with its ids (see :mod:`atlas.db.transfer` and
:mod:`atlas.embeddings.transfer`), can be killed at any point and run again to finish,
and verifies the copy. It never writes to the library it copies from and leaves the
settings file alone: its result says which settings to use afterwards.

It is not a task: the task tables are part of what it copies, and the library must
not change while it moves (stop workers and other commands first).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from atlas.config import Settings
from atlas.db.engine import describe_url
from atlas.db.transfer import (
    TableCount,
    copy_tables,
    count_rows,
    finish_copy,
    locked_target,
    open_source,
    open_target,
    prepare_target,
    reset_sequences,
    same_database,
    source_identity,
)
from atlas.errors import InvalidInput, Unavailable

__all__ = ["ChromaAddress", "StoreMigration", "migrate_store", "parse_chroma_address"]

_ADDRESS = re.compile(
    r"^(?:(?P<scheme>https?)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
    r":(?P<port>[0-9]{1,5})/?$"
)


@dataclass(frozen=True)
class ChromaAddress:
    """Where a Chroma server listens."""

    host: str
    port: int
    ssl: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"


def parse_chroma_address(value: str) -> ChromaAddress:
    """``host:port`` (optionally ``http://`` or ``https://`` in front) of a Chroma server."""
    match = _ADDRESS.match(value.strip())
    port = int(match["port"]) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise InvalidInput(
            f"a Chroma server address is host:port, e.g. vectors.local:8000; got {value!r}"
        )
    return ChromaAddress(host=match["host"], port=port, ssl=match["scheme"] == "https")


@dataclass(frozen=True)
class StoreMigration:
    """What a copy did and found."""

    #: The library copied from, and the stores copied to (no passwords).
    source: str
    database: str
    chroma: str | None
    #: The same copy was begun before (this run went on with it).
    resumed: bool
    #: When an earlier run finished and verified the copy (then this one only verified).
    finished_before: datetime | None
    tables: tuple[TableCount, ...]
    #: Empty unless vectors were copied.
    collections: tuple[Any, ...]
    sequences_reset: int
    elapsed_s: float
    #: The settings that make Atlas use the new stores.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def mismatches(self) -> list[str]:
        """What differs between the library and its copy (empty: verified)."""
        found = [
            f"table {t.table}: {t.source_rows} row(s) in the library, {t.target_rows} in the copy"
            for t in self.tables
            if not t.matches
        ]
        for c in self.collections:
            if c.source_vectors != c.target_vectors or c.missing:
                found.append(
                    f"collection {c.name}: {c.source_vectors} vector(s) in the library, "
                    f"{c.target_vectors} in the copy ({c.missing} missing)"
                )
            elif c.differing:
                found.append(f"collection {c.name}: {c.differing} of {c.sampled} sampled differ")
        return found

    @property
    def verified(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "database": self.database,
            "chroma": self.chroma,
            "resumed": self.resumed,
            "finished_before": self.finished_before.isoformat() if self.finished_before else None,
            "verified": self.verified,
            "mismatches": self.mismatches,
            "tables": [
                {
                    "table": t.table,
                    "source_rows": t.source_rows,
                    "target_rows": t.target_rows,
                    "copied": t.copied,
                    "matches": t.matches,
                }
                for t in self.tables
            ],
            "collections": [
                {
                    "name": c.name,
                    "source_vectors": c.source_vectors,
                    "target_vectors": c.target_vectors,
                    "copied": c.copied,
                    "missing": c.missing,
                    "sampled": c.sampled,
                    "differing": c.differing,
                    "matches": c.matches,
                }
                for c in self.collections
            ],
            "sequences_reset": self.sequences_reset,
            "elapsed_s": round(self.elapsed_s, 3),
            "settings": self.settings,
        }


def migrate_store(
    settings: Settings,
    *,
    database_url: str,
    chroma: str | None = None,
    batch_rows: int = 1000,
    sample_vectors: int = 100,
    on_start: Callable[[str, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> StoreMigration:
    """Copy the library of ``settings`` into a PostgreSQL database (and a Chroma server).

    ``chroma`` is the server's ``host:port``; without it only the database is
    copied. ``batch_rows`` rows go in one transaction (and vectors in one request).
    Resumable: run it again after any failure or kill to finish. Verifies row and
    vector counts (and a sample of vectors) at the end; the result says what differs.
    ``on_start(stage, total)`` and ``on_progress(n)`` report the rows, then the
    vectors, as they are copied.

    Raises ``InvalidInput`` (not PostgreSQL, the library's own database or server,
    a malformed address), ``NotFound`` (no library), ``Conflict`` (the target holds
    another library, or another copy is running), ``Unavailable`` (a target does
    not answer).
    """
    if batch_rows < 1:
        raise InvalidInput(f"rows per batch must be at least 1, got {batch_rows}")
    address = parse_chroma_address(chroma) if chroma is not None else None
    started = time.perf_counter()
    target = open_target(database_url)
    if same_database(settings.database, database_url.strip()):
        target.dispose()
        raise InvalidInput(
            f"the database {describe_url(database_url)} is the library's own database; "
            "copy into another one"
        )
    try:
        source = open_source(settings.database, busy_timeout_s=settings.busy_timeout_s)
    except BaseException:
        target.dispose()
        raise
    try:
        stores = _vector_stores(settings, address) if address is not None else None
        with locked_target(target):
            state = prepare_target(target, source_identity(settings.database))
            copied: dict[str, int] = {}
            sequences = 0
            if state.finished_at is None:
                if on_start is not None:
                    on_start("copying rows", sum(count_rows(source).values()))
                copied = copy_tables(source, target, batch_rows=batch_rows, on_progress=on_progress)
                sequences = reset_sequences(target)
            collections: list[Any] = []
            if stores is not None:
                collections = _copy_vectors(
                    *stores, batch_rows, sample_vectors, on_start, on_progress
                )
            source_counts, target_counts = count_rows(source), count_rows(target)
            tables = tuple(
                TableCount(
                    table=name,
                    source_rows=rows,
                    target_rows=target_counts[name],
                    copied=copied.get(name, 0),
                )
                for name, rows in source_counts.items()
            )
            result = StoreMigration(
                source=source_identity(settings.database),
                database=describe_url(database_url.strip()),
                chroma=address.url if address is not None else None,
                resumed=state.resumed,
                finished_before=state.finished_at,
                tables=tables,
                collections=tuple(collections),
                sequences_reset=sequences,
                elapsed_s=time.perf_counter() - started,
                settings=_settings_after(settings, database_url, address),
            )
            if result.verified and state.finished_at is None:
                finish_copy(target)
            return result
    finally:
        source.dispose()
        target.dispose()


def _settings_after(
    settings: Settings, database_url: str, address: ChromaAddress | None
) -> dict[str, Any]:
    after: dict[str, Any] = {"database_url": describe_url(database_url.strip())}
    if address is not None:
        after.update({"chroma.host": address.host, "chroma.port": address.port})
        if address.ssl:
            after["chroma.ssl"] = True
    elif settings.chroma.host is None:
        # The embedded store keeps serving: vectors are keyed by media id, and ids are kept.
        after["chroma.host"] = None
    return after


def _vector_stores(settings: Settings, address: ChromaAddress) -> tuple[Any, Any]:
    """The library's vector store (None: it has none yet) and the target server's."""
    from atlas.embeddings.store import VectorStore

    own = settings.chroma
    if own.host is not None and (own.host, own.port) == (address.host, address.port):
        raise InvalidInput(
            f"the Chroma server at {address.url} is the library's own vector store; "
            "copy into another one"
        )
    try:
        response = httpx.get(f"{address.url}/api/v2/heartbeat", timeout=own.timeout_s)
    except httpx.HTTPError as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise Unavailable(
            f"the Chroma server at {address.url} is not reachable ({detail})"
        ) from None
    if response.status_code >= 400:
        raise Unavailable(
            f"the Chroma server at {address.url} answered HTTP {response.status_code}"
        )
    target_settings = settings.model_copy(
        update={
            "chroma": own.model_copy(
                update={"host": address.host, "port": address.port, "ssl": address.ssl}
            )
        }
    )
    target = VectorStore(target_settings)
    target.check()
    source = (
        None if own.host is None and not settings.chroma_path.is_dir() else VectorStore(settings)
    )
    return source, target


def _copy_vectors(
    source: Any,
    target: Any,
    batch: int,
    sample: int,
    on_start: Callable[[str, int], None] | None,
    on_progress: Callable[[int], None] | None,
) -> list[Any]:
    from atlas.embeddings.transfer import copy_vectors, library_collections, verify_vectors

    if source is None:
        return []
    if on_start is not None:
        with source.errors():
            total = sum(int(raw.count()) for raw in library_collections(source))
        on_start("copying vectors", total)
    copied = copy_vectors(source, target, batch=batch, on_progress=on_progress)
    return verify_vectors(source, target, copied, sample=sample)
