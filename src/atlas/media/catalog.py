"""Import a catalogue of media records without files (CSV, JSON Lines, .nfo folder).

For libraries exported from other tools and for benchmarks. Genres and tags
imported this way are user-confirmed. Re-importing updates, never duplicates:
an entry matches the record with the same ``external_id``, else the same
``path``, else the same title and year.

The whole file is read and checked before anything is written, as strictly as
the commands that edit an item: no control characters in texts, genres or tags, at
most ``MAX_TAGS`` genres and ``MAX_TAGS`` tags of ``MAX_TAG_LENGTH`` characters on a
row, no unterminated quote in a CSV file and no ``external_id`` twice in one file. A
bad row stops the import with its line number and nothing changes.

Re-importing never overwrites the user's work (see :mod:`atlas.media.userwork`):
fields the user edited keep the user's values, tags the user removed stay removed,
tags the user set stay as they are; fields the user never edited follow the
catalogue. The report counts the edits it kept.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from atlas.db import utcnow
from atlas.db.tables import media
from atlas.errors import InvalidInput, NotFound
from atlas.media.probe import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from atlas.media.sidecars import read_nfo
from atlas.media.tags import (
    MAX_TAGS,
    Tag,
    check_text,
    has_control_characters,
    parse_tag_list,
    upsert_tags,
)
from atlas.media.userwork import (
    NO_WORK,
    Kept,
    UserWork,
    edited_from,
    keep_user_fields,
    keep_user_tags,
    load_user_work,
)
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
_TITLE_LIMIT = 1000
_DESCRIPTION_LIMIT = 100_000


class CatalogEntry(BaseModel):
    """One record of a catalogue, validated."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=_TITLE_LIMIT)
    description: str | None = Field(default=None, max_length=_DESCRIPTION_LIMIT)
    genres: list[str] = []
    tags: list[str] = []
    year: int | None = Field(default=None, ge=1800, le=2200)
    runtime: float | None = Field(default=None, ge=0, le=100_000)
    rating: float | None = Field(default=None, ge=0, le=5)
    path: str | None = None
    external_id: str | None = Field(default=None, max_length=200)

    @field_validator("genres", "tags", mode="before")
    @classmethod
    def _split(cls, value: Any, info: ValidationInfo) -> list[str]:
        tags = parse_tag_list(value if value not in ("", None) else None)
        if len(tags) > MAX_TAGS:
            raise InvalidInput(
                f"column {info.field_name!r} names {len(tags):,} tags; the limit is {MAX_TAGS}"
            )
        return tags

    # As ``atlas media edit``, no control characters; a title is one line, and is kept
    # as written (it is what a later import matches the record by).
    @field_validator("title", mode="after")
    @classmethod
    def _title(cls, value: str) -> str:
        if has_control_characters(value):
            raise InvalidInput("column 'title' contains control characters (a title is one line)")
        return value

    @field_validator("description", mode="after")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_text(
            value, what="column 'description'", limit=_DESCRIPTION_LIMIT, multiline=True
        )

    @field_validator("external_id", mode="after")
    @classmethod
    def _external_id(cls, value: str | None) -> str | None:
        if value is not None and has_control_characters(value):
            raise InvalidInput("column 'external_id' contains control characters")
        return value

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
    #: The user's edits the import left in place where the catalogue differed.
    kept: Kept = field(default_factory=Kept)

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
    seen_ids: dict[str, str] = {}  # external_id -> where it first appeared
    for where, raw in rows:
        data = {
            COLUMN_ALIASES.get(key.strip().lower(), key.strip().lower()): value
            for key, value in raw.items()
            if key
        }
        if "title" not in data:
            raise InvalidInput(f"{where}: no 'title' column")
        try:
            entry = CatalogEntry.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            column = ".".join(str(part) for part in error["loc"])
            raise InvalidInput(f"{where}: column {column!r}: {error['msg']}") from None
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}") from None
        if entry.external_id is not None:
            first = seen_ids.setdefault(entry.external_id, where)
            if first != where:
                raise InvalidInput(
                    f"{where}: external_id {entry.external_id!r} is already used at {first}; "
                    "each record of a catalogue needs its own"
                )
        entries.append(entry)
    if not entries:
        raise InvalidInput(f"{source}: the catalogue has no records")
    return entries


def _csv_rows(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows by the line they start on. Strict: a quote must close before the end of the
    file and be followed by a comma; a row may not have more fields than the header."""
    start = 1  # the line the current row starts on
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header: list[str] | None = None
            for row in reader:
                where = f"{source.name}:{start}"
                start = reader.line_num + 1
                if header is None:
                    header = row
                    continue
                if not row:
                    continue
                if len(row) > len(header):
                    raise InvalidInput(
                        f"{where}: {len(row)} fields, but the header names {len(header)}; "
                        "is a comma or a quote out of place?"
                    )
                yield where, {key: row[i] if i < len(row) else None for i, key in enumerate(header)}
    except UnicodeDecodeError:
        raise InvalidInput(f"{source}: not UTF-8 text") from None
    except csv.Error as exc:
        raise InvalidInput(_csv_error(source, start, exc)) from None


def _csv_error(source: Path, start: int, error: csv.Error) -> str:
    """One line for a CSV syntax error in the row starting on line ``start``, naming the
    line where the quote at fault opened."""
    with source.open(newline="", encoding="utf-8-sig") as handle:
        lines = list(handle)[start - 1 :]
    scan = _scan_quotes(lines, start)
    last = start + len(lines) - 1
    if "expected after" in str(error) and scan.bad_close is not None:
        opened, closed = scan.bad_close
        if opened != closed:
            return (
                f"{source.name}:{opened}: a quote opened on this line closes only on line "
                f"{closed}, followed by more text; is a quote missing?"
            )
        return (
            f"{source.name}:{closed}: text follows a closing quote (a quote inside a quoted "
            'field is written twice: "")'
        )
    if scan.open_at_end is not None:
        return (
            f"{source.name}:{scan.open_at_end}: a quote opened on this line is never closed; "
            f"the field runs on to the end of the file (line {last})"
        )
    return f"{source.name}:{start}: not valid CSV ({error})"


@dataclass(frozen=True)
class _QuoteScan:
    #: (line the quote opened on, line it closed on) of the first closing quote
    #: followed by text other than a comma or the end of the line.
    bad_close: tuple[int, int] | None
    #: The line of the quote still open at the end of the text.
    open_at_end: int | None


def _scan_quotes(lines: Sequence[str], first: int) -> _QuoteScan:
    """Follow the quotes of CSV text (numbered from ``first``) as the csv module does."""
    opened = first
    bad_close: tuple[int, int] | None = None
    state = "start"  # of a field | plain (in an unquoted field) | quoted | closed (just after)
    for number, line in enumerate(lines, start=first):
        for char in line:
            if state == "quoted":
                if char == '"':
                    state = "closed"
            elif state == "closed":
                if char == '"':
                    state = "quoted"  # a doubled quote inside the field
                elif char in ",\r\n":
                    state = "start"
                else:
                    if bad_close is None:
                        bad_close = (opened, number)
                    state = "plain"
            elif char == '"' and state == "start":
                state, opened = "quoted", number
            elif char in ",\r\n":
                state = "start"
            else:
                state = "plain"
    return _QuoteScan(bad_close, opened if state == "quoted" else None)


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
    process: bool | None = None,
) -> CatalogReport:
    """Import a catalogue through ``catalog-import`` tasks of up to 250 records each.

    ``process``: schedule transcription, tagging and embedding of the records (default:
    the ``auto_process`` setting). The choice travels with each task, so a worker with
    another setting obeys it.
    """
    entries = read_catalog(source)
    if on_start is not None:
        on_start(len(entries))
    report = CatalogReport()
    outcomes = []
    if process is None:
        process = dispatcher.settings.auto_process
    for start in range(0, len(entries), _CHUNK):
        chunk = entries[start : start + _CHUNK]
        outcome = dispatcher.submit(
            "catalog-import",
            {"entries": [entry.model_dump() for entry in chunk], "process": process},
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
            report.kept.add(Kept(**outcome.result.get("kept", {})))
        else:
            report.failed_tasks.append(outcome.error or outcome.status)
    return report


@task_type("catalog-import", retries=2, retry_delay_s=0.5)
def catalog_import_task(
    ctx: TaskContext, entries: list[dict[str, Any]], process: bool | None = None
) -> dict[str, Any]:
    """Create or update media records from catalogue entries, in one transaction.

    ``process``: the submitter's choice to process the records further (when absent,
    this process's ``auto_process``).
    """
    parsed = [CatalogEntry.model_validate(entry) for entry in entries]
    kept = Kept()
    created, updated = store_entries(ctx.engine, parsed, kept=kept)
    if process if process is not None else ctx.settings.auto_process:
        schedule_next(ctx, "ingest", created + updated)
    return {"created": created, "updated": updated, "kept": kept.to_dict()}


def store_entries(
    engine: Engine, entries: Sequence[CatalogEntry], *, kept: Kept | None = None
) -> tuple[list[int], list[int]]:
    """Upsert entries in one transaction; returns (created ids, updated ids).

    The user's edits of updated records stay (counted into ``kept``).
    """
    created: list[int] = []
    updated: list[int] = []
    entry = None
    kept = kept if kept is not None else Kept()
    try:
        with engine.begin() as connection:
            renamed = _Renamed(connection)
            owned = _UserWorkCache(connection, entries)
            for entry in entries:
                media_id, is_new = _upsert(connection, entry, kept, renamed, owned)
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


def _upsert(
    connection: Connection,
    entry: CatalogEntry,
    kept: Kept,
    renamed: _Renamed,
    owned: _UserWorkCache,
) -> tuple[int, bool]:
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
        media_id = renamed.match(entry)
    if media_id is None:
        media_id = connection.execute(
            insert(media)
            .values(origin="catalog", media_type=_media_type(entry), created_at=now, **values)
            .returning(media.c.id)
        ).scalar_one()
        is_new = True
        owned.created(media_id)
        work = NO_WORK
    else:
        work = owned.get(media_id)
        if work.fields:
            current = connection.execute(select(media).where(media.c.id == media_id)).one()
            kept.fields += keep_user_fields(work, dict(current._mapping), values)
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
    tags, removed = keep_user_tags(work, tags)
    kept.removed_tags += removed
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


class _UserWorkCache:
    """The user's work on the records a batch updates, read in bulk up front for the
    records its entries name by external_id or title (any other one on demand)."""

    def __init__(self, connection: Connection, entries: Sequence[CatalogEntry]) -> None:
        self._connection = connection
        ids = {entry.external_id for entry in entries if entry.external_id is not None}
        titles = {entry.title for entry in entries}
        known: set[int] = set()
        if ids:
            known.update(
                connection.execute(
                    select(media.c.id).where(media.c.external_id.in_(sorted(ids)))
                ).scalars()
            )
        known.update(
            connection.execute(
                select(media.c.id).where(media.c.title.in_(sorted(titles)))
            ).scalars()
        )
        self._known = known
        self._work = load_user_work(connection, known)

    def created(self, media_id: int) -> None:
        self._known.add(media_id)  # made by this batch: no work of the user's yet

    def get(self, media_id: int) -> UserWork:
        if media_id not in self._known:
            self._work.update(load_user_work(self._connection, [media_id]))
            self._known.add(media_id)
        return self._work.get(media_id, NO_WORK)


class _Renamed:
    """Records by the title and year the user changed them from (read on first need), so
    that a re-import without ids finds the record the user renamed instead of adding a
    second one."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._edits: dict[str, dict[Any, set[int]]] | None = None

    def match(self, entry: CatalogEntry) -> int | None:
        if self._edits is None:
            self._edits = edited_from(self._connection, ("title", "year"))
        titles, years = self._edits["title"], self._edits["year"]
        candidates = titles.get(entry.title, set()) | years.get(entry.year, set())
        if not candidates:
            return None
        rows = self._connection.execute(
            select(media.c.id, media.c.title, media.c.year, media.c.external_id)
            .where(media.c.id.in_(sorted(candidates)))
            .order_by(media.c.id)
        )
        for row in rows:
            if entry.external_id is not None and row.external_id is not None:
                continue  # another item: see _match
            if (row.title == entry.title or row.id in titles.get(entry.title, ())) and (
                row.year == entry.year or row.id in years.get(entry.year, ())
            ):
                return int(row.id)
        return None


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
