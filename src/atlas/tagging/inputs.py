"""What the tagger reads of an item: its text without tags, that text's vector, its tags.

The tagger text is the item's embedding document (:func:`atlas.embeddings.build_document`)
made without any tags and without the ``genre`` column: title, description,
artist and album, the media facts, a transcript excerpt. Tags are what the
tagger predicts, so they must not be part of what it predicts from; and the
vectors of that text are comparable between items that carry tags and items
that do not (the learned profiles train on the one and apply to the other).

Vectors are kept in ``media_tag_inputs`` keyed by the model and a hash of the
text, so each text is embedded once per model; the row also records the hash of
everything the item's last tagging depended on (:func:`input_hash`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from atlas.config import Settings
from atlas.db import database_errors, utcnow
from atlas.db.tables import media, media_tag_inputs, media_tag_rejections, transcripts
from atlas.embeddings import DocumentInput, build_document, embed_texts, get_provider
from atlas.media.tags import Tag, tags_by_media

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

__all__ = [
    "TAGGER_VERSION",
    "TagInput",
    "chunked",
    "input_hash",
    "input_vectors",
    "load_inputs",
    "load_texts",
    "mark_tagged",
    "tagged_hashes",
]

#: Part of every input hash: bump it when the tagger's logic changes.
TAGGER_VERSION = "atlas-tagger-v1"
_CHUNK = 500
_TEXT_COLUMNS = (
    media.c.id,
    media.c.media_type,
    media.c.title,
    media.c.year,
    media.c.artist,
    media.c.description,
    media.c.duration_s,
    media.c.runtime_min,
    media.c.container_tags,
)


@dataclass(frozen=True)
class TagInput:
    """One item as the tagger sees it."""

    media_id: int
    media_type: str
    title: str | None
    #: The tagger text (see the module docstring); empty when the item has no words.
    text: str
    description: str | None = None
    transcript: str | None = None
    #: Its current tags, every source.
    tags: tuple[Tag, ...] = ()
    #: Tags the user removed from it (normalised): never predicted again.
    rejected: frozenset[str] = field(default_factory=frozenset)

    @property
    def has_words(self) -> bool:
        return bool(self.text.strip())

    def text_hash(self, model_id: str) -> str:
        return hashlib.sha256(f"{model_id}\n{self.text}".encode()).hexdigest()


def chunked(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def load_texts(
    connection: Connection, media_ids: Sequence[int], *, keep_sources: bool = True
) -> dict[int, TagInput]:
    """The tagger texts of these items (without their tags), by id; unknown ids left out.

    ``keep_sources=False`` drops the full description and transcript once the
    text is made (long transcripts of many items need not stay in memory).
    """
    rows: list[Any] = []
    spoken: dict[int, str] = {}
    for part in chunked(sorted(set(media_ids))):
        rows += connection.execute(select(*_TEXT_COLUMNS).where(media.c.id.in_(part))).all()
        spoken.update(
            connection.execute(
                select(transcripts.c.media_id, transcripts.c.text).where(
                    transcripts.c.media_id.in_(part)
                )
            )
            .tuples()
            .all()
        )
    result = {}
    for row in rows:
        transcript = spoken.get(row.id)
        document = build_document(
            DocumentInput(
                media_type=row.media_type,
                title=row.title,
                year=row.year,
                artist=row.artist,
                description=row.description,
                transcript=transcript,
                duration_s=row.duration_s,
                runtime_min=row.runtime_min,
                container_tags=row.container_tags,
            )
        )
        result[row.id] = TagInput(
            media_id=row.id,
            media_type=row.media_type,
            title=row.title,
            text=document.text if document.embeddable else "",
            description=row.description if keep_sources else None,
            transcript=transcript if keep_sources else None,
        )
    return result


def load_inputs(connection: Connection, media_ids: Sequence[int]) -> dict[int, TagInput]:
    """The tagger texts of these items with their tags and rejections; unknown ids left out."""
    items = load_texts(connection, media_ids)
    ids = sorted(items)
    tags: dict[int, list[Tag]] = {}
    rejected: dict[int, set[str]] = {}
    for part in chunked(ids):
        tags.update(tags_by_media(connection, list(part)))
        for media_id, norm in connection.execute(
            select(media_tag_rejections.c.media_id, media_tag_rejections.c.tag_norm).where(
                media_tag_rejections.c.media_id.in_(part)
            )
        ):
            rejected.setdefault(media_id, set()).add(norm)
    return {
        media_id: TagInput(
            **{
                **item.__dict__,
                "tags": tuple(tags.get(media_id, ())),
                "rejected": frozenset(rejected.get(media_id, ())),
            }
        )
        for media_id, item in items.items()
    }


def input_hash(item: TagInput, model_id: str, extra: Mapping[str, Any]) -> str:
    """Hash of what tagging ``item`` depends on besides the rest of the library."""
    payload = json.dumps(
        {"v": TAGGER_VERSION, "text": item.text_hash(model_id), **extra},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def tagged_hashes(connection: Connection, media_ids: Sequence[int]) -> dict[int, str]:
    """The input hash of each item's last tagging (items never tagged are left out)."""
    found: dict[int, str] = {}
    for part in chunked(sorted(set(media_ids))):
        rows = connection.execute(
            select(media_tag_inputs.c.media_id, media_tag_inputs.c.input_hash).where(
                media_tag_inputs.c.media_id.in_(part), media_tag_inputs.c.input_hash.is_not(None)
            )
        )
        found.update({row.media_id: row.input_hash for row in rows})
    return found


def input_vectors(
    settings: Settings, engine: Engine, items: Sequence[TagInput]
) -> dict[int, Vector]:
    """The vectors of the items' tagger texts: stored ones, the rest embedded and stored.

    Items without words are left out. The rows written are a cache (one
    transaction; an item deleted meanwhile is skipped); the item's last input
    hash is kept.
    """
    import numpy as np

    model_id = get_provider(settings).model_id
    wanted = {item.media_id: item.text_hash(model_id) for item in items if item.has_words}
    found: dict[int, Vector] = {}
    with database_errors(engine), engine.connect() as connection:
        for part in chunked(sorted(wanted)):
            rows = connection.execute(
                select(
                    media_tag_inputs.c.media_id,
                    media_tag_inputs.c.text_hash,
                    media_tag_inputs.c.vector,
                ).where(media_tag_inputs.c.media_id.in_(part), media_tag_inputs.c.model == model_id)
            )
            for row in rows:
                if row.text_hash == wanted[row.media_id]:
                    found[row.media_id] = np.frombuffer(row.vector, dtype="<f4").astype(np.float32)
    missing = [item for item in items if item.media_id in wanted and item.media_id not in found]
    if not missing:
        return found
    vectors = embed_texts(settings, [item.text for item in missing])
    now = utcnow()
    rows_out = []
    for item, vector in zip(missing, vectors, strict=True):
        found[item.media_id] = vector
        rows_out.append(
            {
                "media_id": item.media_id,
                "model": model_id,
                "text_hash": wanted[item.media_id],
                "dimension": int(vector.shape[0]),
                "vector": np.asarray(vector, dtype="<f4").tobytes(),
                "updated_at": now,
            }
        )
    with database_errors(engine), engine.begin() as connection:
        alive: set[int] = set()
        for part in chunked([row["media_id"] for row in rows_out]):
            alive.update(
                connection.execute(select(media.c.id).where(media.c.id.in_(part))).scalars()
            )
        _upsert(connection, [row for row in rows_out if row["media_id"] in alive])
    return found


def mark_tagged(
    connection: Connection,
    media_id: int,
    *,
    model_id: str,
    text_hash: str,
    vector: Vector,
    hash_of_input: str,
    now: datetime,
    withheld: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Record, in the tagging's transaction, what the item was tagged from.

    ``withheld``: the tags a learned cut-off held back (``{tag, norm, kind, confidence}``).
    """
    import numpy as np

    _upsert(
        connection,
        [
            {
                "media_id": media_id,
                "model": model_id,
                "text_hash": text_hash,
                "dimension": int(vector.shape[0]),
                "vector": np.asarray(vector, dtype="<f4").tobytes(),
                "input_hash": hash_of_input,
                "withheld": json.dumps(list(withheld)) if withheld else None,
                "tagged_at": now,
                "updated_at": now,
            }
        ],
    )


def _upsert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    for part in chunked(rows):
        statement = dialect.insert(media_tag_inputs)
        updates = {name: statement.excluded[name] for name in part[0] if name != "media_id"}
        connection.execute(
            statement.on_conflict_do_update(index_elements=["media_id"], set_=updates), list(part)
        )
