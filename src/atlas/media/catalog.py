"""Import a catalogue of media records without files (CSV, JSON Lines, .nfo folder).

For libraries exported from other tools and for benchmarks. Genres and tags
imported this way are user-confirmed. Re-importing updates, never duplicates:
an entry matches the record with the same ``external_id``, else the same
``path``, else the same title and year.

The whole file is read and checked before anything is written; a bad row stops
the import with its line number and nothing changes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from atlas.db import utcnow
from atlas.db.tables import media
from atlas.errors import InvalidInput, NotFound
from atlas.media.probe import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from atlas.media.sidecars import read_nfo
from atlas.media.tags import Tag, parse_tag_list, upsert_tags
from atlas.media.words import refresh_words
from atlas.paths import user_path
from atlas.tasks import Dispatcher, TaskContext, task_type
from atlas.tasks.pipeline import schedule_next

__all__ = ["CatalogEntry", "CatalogReport", "import_catalog", "read_catalog", "store_entries"]

#: Other names accepted for the catalogue's columns.
COLUMN_ALIASES = {
    "overview": "description",
    "plot": "description",
    "summary": "description",
    "genre": "genres",
    "keywords": "tags",
    "release_date": "year",
    "date": "year",
    "runtime_min": "runtime",
}
_CHUNK = 250


class CatalogEntry(BaseModel):
    """One record of a catalogue, validated."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=1000)
    description: str | None = Field(default=None, max_length=100_000)
    genres: list[str] = []
    tags: list[str] = []
    year: int | None = Field(default=None, ge=1800, le=2200)
    runtime: float | None = Field(default=None, ge=0, le=100_000)
    rating: float | None = Field(default=None, ge=0, le=5)
    path: str | None = None
    external_id: str | None = Field(default=None, max_length=200)

    @field_validator("genres", "tags", mode="before")
    @classmethod
    def _split(cls, value: Any) -> list[str]:
        return parse_tag_list(value if value not in ("", None) else None)

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()[:4]
            return value or None
        return value

    @field_validator("description", "path", "external_id", "runtime", "rating", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("path")
    @classmethod
    def _normalised_path(cls, value: str | None) -> str | None:
        """Absolute, ``~`` expanded, symlinks followed: the form ingest records paths in.

        A path no file system can hold (a NUL, too long, a symlink loop) is refused.
        The file need not exist, nor be inside the library: a path outside every
        library root is recorded, and Atlas never moves that file.
        """
        return None if value is None else str(user_path(value, what="path", resolve=True))


@dataclass
class CatalogReport:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)

    @property
    def media_ids(self) -> list[int]:
        return self.created + self.updated


def read_catalog(source: Path | str) -> list[CatalogEntry]:
    """Read and validate a whole catalogue; raises ``InvalidInput`` naming the bad line."""
    if not str(source).strip():
        raise InvalidInput('an empty path ("") names no catalogue file or folder')
    source = user_path(source, what="catalogue")
    if not source.exists():
        raise NotFound(f"{source}: no such catalogue file or folder")
    if source.is_dir():
        rows: Iterator[tuple[str, dict[str, Any]]] = _nfo_rows(source)
    elif source.suffix.lower() == ".csv":
        rows = _csv_rows(source)
    elif source.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(source)
    else:
        raise InvalidInput(
            f"{source}: unknown catalogue format; use .csv, .jsonl or a folder of .nfo files"
        )
    entries = []
    for where, raw in rows:
        data = {
            COLUMN_ALIASES.get(key.strip().lower(), key.strip().lower()): value
            for key, value in raw.items()
            if key
        }
        if "title" not in data:
            raise InvalidInput(f"{where}: no 'title' column")
        try:
            entries.append(CatalogEntry.model_validate(data))
        except ValidationError as exc:
            error = exc.errors()[0]
            column = ".".join(str(part) for part in error["loc"])
            raise InvalidInput(f"{where}: column {column!r}: {error['msg']}") from None
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}") from None
    if not entries:
        raise InvalidInput(f"{source}: the catalogue has no records")
    return entries


def _csv_rows(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                yield f"{source.name}:{reader.line_num}", row
    except UnicodeDecodeError:
        raise InvalidInput(f"{source}: not UTF-8 text") from None
    except csv.Error as exc:
        raise InvalidInput(f"{source}: not a valid CSV file ({exc})") from None


def _jsonl_rows(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InvalidInput(f"{source}: not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source.name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{where}: each line must be a JSON object")
        yield where, row


def _nfo_rows(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for nfo_path in sorted(folder.rglob("*.nfo")):
        nfo = read_nfo(nfo_path)
        if nfo is None or not nfo.title:
            continue
        media_file = next(
            (
                p
                for p in sorted(nfo_path.parent.glob(f"{nfo_path.stem}.*"))
                if p.suffix.lower() not in (".nfo", ".srt", ".vtt", ".jpg", ".png")
            ),
            None,
        )
        yield (
            str(nfo_path.relative_to(folder)),
            {
                "title": nfo.title,
                "description": nfo.description,
                "genres": nfo.genres,
                "tags": nfo.tags,
                "year": nfo.year,
                "runtime": nfo.runtime_min,
                "rating": nfo.rating,
                "external_id": nfo.external_id,
                "path": str(media_file.resolve()) if media_file else None,
            },
        )


def import_catalog(
    dispatcher: Dispatcher,
    source: Path | str,
    *,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> CatalogReport:
    """Import a catalogue through ``catalog-import`` tasks of up to 250 records each."""
    entries = read_catalog(source)
    if on_start is not None:
        on_start(len(entries))
    report = CatalogReport()
    outcomes = []
    for start in range(0, len(entries), _CHUNK):
        chunk = entries[start : start + _CHUNK]
        outcome = dispatcher.submit(
            "catalog-import", {"entries": [entry.model_dump() for entry in chunk]}
        )
        outcomes.append(outcome)
        if outcome.finished and on_progress is not None:
            on_progress(len(chunk))
    if dispatcher.queued:
        outcomes = dispatcher.wait([o.task_id for o in outcomes])
    for outcome in outcomes:
        if outcome.ok:
            report.created += outcome.result["created"]
            report.updated += outcome.result["updated"]
        else:
            report.failed_tasks.append(outcome.error or outcome.status)
    return report


@task_type("catalog-import", retries=2, retry_delay_s=0.5)
def catalog_import_task(ctx: TaskContext, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Create or update media records from catalogue entries, in one transaction."""
    parsed = [CatalogEntry.model_validate(entry) for entry in entries]
    created, updated = store_entries(ctx.engine, parsed)
    schedule_next(ctx, "ingest", created + updated)
    return {"created": created, "updated": updated}


def store_entries(engine: Engine, entries: Sequence[CatalogEntry]) -> tuple[list[int], list[int]]:
    """Upsert entries in one transaction; returns (created ids, updated ids)."""
    created: list[int] = []
    updated: list[int] = []
    entry = None
    try:
        with engine.begin() as connection:
            for entry in entries:
                media_id, is_new = _upsert(connection, entry)
                (created if is_new else updated).append(media_id)
            refresh_words(connection, created + updated)
    except IntegrityError:
        title = entry.title if entry is not None else "?"
        raise InvalidInput(
            f"catalogue entry {title!r} clashes with another record "
            "(its path or external_id belongs to a different item); nothing was imported "
            "from this batch"
        ) from None
    return created, updated


def _upsert(connection: Connection, entry: CatalogEntry) -> tuple[int, bool]:
    now = utcnow()
    values: dict[str, Any] = {
        "title": entry.title,
        "description": entry.description,
        "genre": entry.genres[0] if entry.genres else None,
        "year": entry.year,
        "runtime_min": entry.runtime,
        "updated_at": now,
    }
    if entry.rating is not None:
        values["rating"] = entry.rating
    if entry.external_id is not None:
        values["external_id"] = entry.external_id
    if entry.path is not None:
        values["path"] = str(Path(entry.path).expanduser().resolve())

    media_id = _match(connection, entry, values.get("path"))
    if media_id is None:
        media_id = connection.execute(
            insert(media)
            .values(origin="catalog", media_type=_media_type(entry), created_at=now, **values)
            .returning(media.c.id)
        ).scalar_one()
        is_new = True
    else:
        connection.execute(update(media).where(media.c.id == media_id).values(**values))
        is_new = False
    tags = [
        Tag(tag, kind="genre", source="user", explanation="imported from a catalogue")
        for tag in entry.genres
    ]
    tags += [
        Tag(tag, kind="keyword", source="user", explanation="imported from a catalogue")
        for tag in entry.tags
    ]
    upsert_tags(connection, media_id, tags)
    return media_id, is_new


def _match(connection: Connection, entry: CatalogEntry, path: str | None) -> int | None:
    if entry.external_id is not None:
        found = connection.scalar(
            select(media.c.id).where(media.c.external_id == entry.external_id)
        )
        if found is not None:
            return int(found)
    if path is not None:
        found = connection.scalar(select(media.c.id).where(media.c.path == path))
        if found is not None:
            return int(found)
    condition = and_(
        media.c.title == entry.title,
        media.c.year == entry.year if entry.year is not None else media.c.year.is_(None),
    )
    if entry.external_id is not None:
        # A record with another external id is another item, even with the same title.
        condition = and_(condition, media.c.external_id.is_(None))
    found = connection.scalar(select(media.c.id).where(condition).order_by(media.c.id).limit(1))
    return int(found) if found is not None else None


def _media_type(entry: CatalogEntry) -> str:
    if entry.path:
        suffix = Path(entry.path).suffix.lower().lstrip(".")
        for kind, extensions in (
            ("video", VIDEO_EXTENSIONS),
            ("audio", AUDIO_EXTENSIONS),
            ("image", IMAGE_EXTENSIONS),
        ):
            if suffix in extensions:
                return kind
    # A film or show catalogue describes video unless it says otherwise.
    return "video"
