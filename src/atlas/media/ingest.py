"""Ingest media files: probe, fingerprint, sidecars; one ``ingest`` task per file.

An unchanged file (same path, size and mtime) costs one ``stat`` and no task.
A file whose content is already known under a path that no longer exists was
moved: it keeps its media id (and everything hanging off it). A changed file is
re-fingerprinted and re-probed. Descriptive fields a user may have edited
(title, genre, ...) are only filled in when empty, never overwritten; tags the
user removed are not added back from an .nfo, and the user's own tags are left as
they are (see :mod:`atlas.media.userwork`); the report counts what it kept.

A folder that cannot be listed is reported and skipped; the rest is ingested,
and the files Atlas knows under it are not marked missing. A folder (or a given
file's own folder) becomes a library root, where ``atlas media move`` may move
files, only once a file in it was ingested.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from atlas.db import database_errors, utcnow
from atlas.db.tables import library_roots, media, media_sidecars, user_feedback
from atlas.errors import InvalidInput, NotFound
from atlas.media.fingerprint import fingerprint
from atlas.media.probe import MEDIA_EXTENSIONS, ProbeResult, probe
from atlas.media.sidecars import NfoMetadata, Sidecar, find_sidecars, read_nfo
from atlas.media.tags import Tag, parse_tag_list, upsert_tags
from atlas.media.userwork import NO_WORK, Kept, UserWork, keep_user_tags, load_user_work
from atlas.media.words import refresh_words
from atlas.paths import os_errors, user_path
from atlas.tasks import Dispatcher, TaskContext, TaskOutcome, task_type
from atlas.tasks.pipeline import schedule_next

__all__ = [
    "FileIngest",
    "FileWalk",
    "IngestItem",
    "IngestReport",
    "collect_files",
    "ingest_file",
    "ingest_paths",
    "remember_roots",
]

# Descriptive fields: filled from the file when empty, never overwritten.
_DESCRIPTIVE = (
    "title",
    "artist",
    "genre",
    "description",
    "year",
    "runtime_min",
    "rating",
    "external_id",
)


@dataclass(frozen=True)
class FileIngest:
    """What ingesting one file did."""

    media_id: int
    action: str  # new | updated | moved | duplicate | unchanged
    path: str
    previous_path: str | None = None
    #: The user's edits left in place where the file or its .nfo said otherwise.
    kept: Kept = field(default_factory=Kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "media_id": self.media_id,
            "action": self.action,
            "path": self.path,
            "previous_path": self.previous_path,
            "kept": self.kept.to_dict(),
        }


@dataclass(frozen=True)
class IngestItem:
    """One file of an ``ingest_paths`` run, as the user sees it."""

    path: str
    status: str  # new | updated | moved | duplicate | unchanged | queued | error
    media_id: int | None = None
    task_id: int | None = None
    error: str | None = None
    kept: Kept = field(default_factory=Kept)


@dataclass
class IngestReport:
    items: list[IngestItem] = field(default_factory=list)
    #: Media under the ingested folders whose file has disappeared.
    missing: int = 0
    #: One line for each folder (or entry) that could not be listed or read.
    unreadable: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def failed(self) -> list[IngestItem]:
        return [item for item in self.items if item.status == "error"]

    @property
    def media_ids(self) -> list[int]:
        return [item.media_id for item in self.items if item.media_id is not None]

    @property
    def kept(self) -> Kept:
        """The user's edits the run left in place, over all files."""
        total = Kept()
        for item in self.items:
            total.add(item.kept)
        return total

    def summary(self) -> dict[str, int]:
        statuses = ("new", "updated", "moved", "duplicate", "unchanged", "queued", "error")
        return {status: self.count(status) for status in statuses if self.count(status)}


# --- walking ---------------------------------------------------------------


@dataclass
class FileWalk:
    """The files an ingest found, the folder each was found in, and what could not be read."""

    files: list[Path] = field(default_factory=list)
    #: The folders given (walked), as opposed to files given.
    folders: list[Path] = field(default_factory=list)
    #: file -> the library root it belongs to: the folder given, or a given file's folder.
    roots: dict[Path, Path] = field(default_factory=dict)
    #: (folder or file, reason) for each entry that could not be listed or read.
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def add(self, path: Path, root: Path) -> None:
        if path not in self.roots:
            self.roots[path] = root
            self.files.append(path)

    def under_unreadable(self, path: str) -> bool:
        """Whether ``path`` lies in (or is) a folder that could not be listed."""
        return any(
            path == str(folder) or path.startswith(str(folder).rstrip(os.sep) + os.sep)
            for folder, _ in self.unreadable
        )


def collect_files(paths: Sequence[Path | str], *, recursive: bool) -> FileWalk:
    """The files to ingest: files as given, and media files inside folders.

    Raises ``InvalidInput`` (an empty path, one no file system can hold) or
    ``NotFound`` (a path that does not exist) before anything is done. Folders
    contribute files with a media extension, skipping hidden entries; without
    ``recursive`` only their top level. A folder that cannot be listed, or an
    entry that cannot be read, is recorded in ``unreadable`` and the walk goes on.
    """
    if not paths:
        raise InvalidInput("give at least one file or folder to ingest")
    given = []
    for raw in paths:
        if not os.fspath(raw).strip():
            raise InvalidInput(
                'an empty path ("") names no file or folder; give the files or folders to ingest'
            )
        path = user_path(raw, what="path to ingest", resolve=True)
        with os_errors(path, "cannot be read"):
            found = path.exists()
        if not found:
            raise NotFound(f"{raw}: no such file or folder")
        given.append(path)

    walk = FileWalk()
    for path in given:
        if path.is_dir():
            walk.folders.append(path)
            for found_file in _walk(path, recursive, walk.unreadable):
                walk.add(found_file, path)
        else:
            walk.add(path, path.parent)
    return walk


def _walk(folder: Path, recursive: bool, unreadable: list[tuple[Path, str]]) -> Iterable[Path]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        unreadable.append((folder, f"cannot list the folder ({exc.strerror}); skipped"))
        return
    subfolders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(Path(entry.path))
                continue
            if Path(entry.name).suffix.lower().lstrip(".") not in MEDIA_EXTENSIONS:
                continue
            if not entry.is_file():
                continue
        except OSError as exc:  # a symlink loop, a file gone while listing, ...
            unreadable.append((Path(entry.path), f"cannot be read ({exc.strerror}); skipped"))
            continue
        try:
            entry.path.encode("utf-8")
        except UnicodeEncodeError:
            unreadable.append(
                (
                    Path(entry.path),
                    "its name is not UTF-8, which Atlas cannot record; skipped",
                )
            )
            continue
        yield Path(entry.path)
    if recursive:
        for subfolder in subfolders:
            yield from _walk(subfolder, recursive, unreadable)


# --- the command's service ---------------------------------------------------


def ingest_paths(
    dispatcher: Dispatcher,
    paths: Sequence[Path | str],
    *,
    recursive: bool = False,
    force: bool = False,
    wait: bool = True,
    process: bool | None = None,
    on_start: Callable[[int], None] | None = None,
    on_item: Callable[[IngestItem], None] | None = None,
) -> IngestReport:
    """Ingest files and folders; one ``ingest`` task per new or changed file.

    ``on_start(n)`` is called with the number of files found, ``on_item`` once per
    file as it is done. With a queue, tasks are enqueued and, when ``wait``, waited
    for. A failing file is reported in the result; the others go on. ``process``:
    schedule transcription, tagging and embedding of new and changed files (default:
    the ``auto_process`` setting); the choice travels with each task, so a worker
    with another setting obeys it.
    """
    walk = collect_files(paths, recursive=recursive)
    files = walk.files
    if on_start is not None:
        on_start(len(files))
    report = IngestReport()

    def record(item: IngestItem) -> None:
        report.items.append(item)
        if on_item is not None:
            on_item(item)

    known = {} if force else _known_stats(dispatcher.engine, files)
    todo: list[Path] = []
    for path in files:
        stat = _stat(path)
        previous = known.get(str(path))
        if stat is not None and previous is not None and previous[1:] == stat:
            record(IngestItem(str(path), "unchanged", media_id=previous[0]))
        else:
            todo.append(path)

    # ffprobe is a process per file: several at once keep the cores busy.
    submitted: list[tuple[str, TaskOutcome]] = []

    def on_outcome(index: int, outcome: TaskOutcome) -> None:
        path = str(todo[index])
        if outcome.finished:
            record(_item_from_outcome(path, outcome))
        else:
            submitted.append((path, outcome))

    if process is None:
        process = dispatcher.settings.auto_process
    dispatcher.submit_many(
        "ingest",
        [
            {"path": str(path), "force": force, "process": process, "root": str(walk.roots[path])}
            for path in todo
        ],
        concurrency=dispatcher.settings.ingest_concurrency,
        on_outcome=on_outcome,
    )
    _mark_missing(dispatcher.engine, walk, recursive=recursive, report=report)
    if submitted and wait:
        by_id = {outcome.task_id: path for path, outcome in submitted}
        dispatcher.wait(
            by_id, on_finished=lambda o: record(_item_from_outcome(by_id[o.task_id], o))
        )
    elif submitted:
        for queued_path, outcome in submitted:
            record(IngestItem(queued_path, "queued", task_id=outcome.task_id))
    # Files finish in any order when several run at once; report them in walk order.
    position = {str(path): index for index, path in enumerate(files)}
    report.items.sort(key=lambda item: position.get(item.path, len(position)))
    report.unreadable = [f"{where}: {reason}" for where, reason in walk.unreadable]
    # Only a folder that really holds ingested media becomes a library root: a
    # failed or empty ingest must not open a folder to moves.
    root_of = {str(path): root for path, root in walk.roots.items()}
    remember_roots(
        dispatcher.engine,
        {root_of[item.path] for item in report.items if item.status in _INGESTED},
    )
    return report


#: Statuses of a file that is in the library after the ingest.
_INGESTED = frozenset({"new", "updated", "moved", "duplicate", "unchanged"})


def remember_roots(engine: Engine, folders: Iterable[Path | str]) -> None:
    """Record folders as library roots (idempotent; safe from several processes at once)."""
    wanted = sorted({str(folder) for folder in folders})
    if not wanted:
        return
    for attempt in (1, 2):
        try:
            with database_errors(engine), engine.begin() as connection:
                known = set(
                    connection.execute(
                        select(library_roots.c.path).where(library_roots.c.path.in_(wanted))
                    ).scalars()
                )
                new = [folder for folder in wanted if folder not in known]
                if new:
                    now = utcnow()
                    connection.execute(
                        insert(library_roots), [{"path": folder, "added_at": now} for folder in new]
                    )
            return
        except IntegrityError:
            # Another process recorded one of them first: look again.
            if attempt == 2:
                raise


def _mark_missing(engine: Engine, walk: FileWalk, *, recursive: bool, report: IngestReport) -> None:
    """Flag media under the ingested folders whose file is gone (their data stays).

    Files under a folder that could not be listed are not known to be gone.
    """
    if not walk.folders:
        return
    present = {str(path) for path in walk.files}
    gone: list[int] = []
    with database_errors(engine), engine.connect() as connection:
        for folder in walk.folders:
            prefix = str(folder).rstrip(os.sep) + os.sep
            rows = connection.execute(
                select(media.c.id, media.c.path).where(
                    media.c.path.startswith(prefix, autoescape=True), media.c.missing.is_(False)
                )
            )
            for row in rows:
                inside = recursive or os.sep not in row.path[len(prefix) :]
                if (
                    inside
                    and row.path not in present
                    and not walk.under_unreadable(row.path)
                    and _gone(row.path)
                ):
                    gone.append(row.id)
    if gone:
        with database_errors(engine), engine.begin() as connection:
            connection.execute(update(media).where(media.c.id.in_(gone)).values(missing=True))
        report.missing = len(gone)


def _gone(path: str) -> bool:
    """Whether the file at ``path`` is known not to exist (not merely unreadable)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return False
    return False


def _item_from_outcome(path: str, outcome: TaskOutcome) -> IngestItem:
    if outcome.ok and isinstance(outcome.result, dict):
        return IngestItem(
            path,
            outcome.result["action"],
            media_id=outcome.result["media_id"],
            task_id=outcome.task_id,
            kept=Kept(**outcome.result.get("kept", {})),
        )
    return IngestItem(
        path, "error", task_id=outcome.task_id, error=outcome.error or f"task {outcome.status}"
    )


def _stat(path: Path) -> tuple[int, float] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime


def _known_stats(engine: Engine, files: Sequence[Path]) -> dict[str, tuple[int, int, float]]:
    """path -> (media id, size, mtime) for files already ingested and present."""
    known: dict[str, tuple[int, int, float]] = {}
    names = [str(path) for path in files]
    with database_errors(engine), engine.connect() as connection:
        for start in range(0, len(names), 500):
            rows = connection.execute(
                select(media.c.id, media.c.path, media.c.size_bytes, media.c.mtime).where(
                    media.c.path.in_(names[start : start + 500]), media.c.missing.is_(False)
                )
            )
            for row in rows:
                known[row.path] = (row.id, row.size_bytes, row.mtime)
    return known


# --- the task ----------------------------------------------------------------


@task_type("ingest", retries=2, retry_delay_s=0.5)
def ingest_task(
    ctx: TaskContext,
    path: str,
    force: bool = False,
    process: bool | None = None,
    root: str | None = None,
) -> dict[str, Any]:
    """Ingest one file: probe, fingerprint and sidecars, then schedule processing.

    ``process``: the submitter's choice to process the file further (when absent,
    this process's ``auto_process``). ``root``: the folder given to ingest that
    holds the file; recorded as a library root once the file is in.
    """
    result = ingest_file(ctx.engine, Path(path), force=force)
    if root is not None:
        remember_roots(ctx.engine, [root])
    wanted = process if process is not None else ctx.settings.auto_process
    # A second attempt may follow one that stored the file and then died before
    # it scheduled the next stage: the file now looks unchanged, but its chain
    # still has to run (each stage skips what is already done).
    if wanted and (result.action in ("new", "updated", "duplicate") or ctx.attempt > 1):
        schedule_next(ctx, "ingest", [result.media_id])
    return result.to_dict()


def ingest_file(engine: Engine, path: Path, *, force: bool = False) -> FileIngest:
    """Ingest one file; idempotent. Raises ``InvalidInput`` for a non-media file."""
    path = path.resolve()
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None
    if not path.is_file():
        raise InvalidInput(f"{path}: not a regular file")

    with engine.connect() as connection:
        existing = connection.execute(select(media).where(media.c.path == str(path))).first()
    if (
        existing is not None
        and not force
        and not existing.missing
        and existing.size_bytes == stat.st_size
        and existing.mtime == stat.st_mtime
    ):
        return FileIngest(existing.id, "unchanged", str(path))

    try:
        content_hash = fingerprint(path)
    except PermissionError:
        raise InvalidInput(f"{path}: cannot be read (permission denied)") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: not a regular file") from None

    facts: ProbeResult | None = None
    if force or existing is None or existing.content_hash != content_hash:
        facts = probe(path)
    sidecars = find_sidecars(path)
    nfo = next((read_nfo(s.path) for s in sidecars if s.kind == "nfo"), None)

    for attempt in (1, 2):
        try:
            with engine.begin() as connection:
                return _store(connection, path, stat, content_hash, facts, sidecars, nfo)
        except IntegrityError:
            # Another worker stored the same path or content first: go again,
            # this time as an update of its row.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _store(
    connection: Connection,
    path: Path,
    stat: os.stat_result,
    content_hash: str,
    facts: ProbeResult | None,
    sidecars: list[Sidecar],
    nfo: NfoMetadata | None,
) -> FileIngest:
    now = utcnow()
    existing = connection.execute(select(media).where(media.c.path == str(path))).first()
    values: dict[str, Any] = {
        "size_bytes": stat.st_size,
        "mtime": stat.st_mtime,
        "content_hash": content_hash,
        "missing": False,
        "updated_at": now,
    }
    if facts is not None:
        values.update(_facts(facts), probed_at=now)
    descriptive = _descriptive(path, facts, nfo)

    previous_path = None
    kept = Kept()
    work = NO_WORK
    if existing is not None:
        media_id = existing.id
        changed = facts is not None
        action = "updated" if changed else "unchanged"
        work = _user_work(connection, media_id)
        kept.fields = _kept_fields(work, existing, path, descriptive)
        values.update(
            {
                key: value
                for key, value in descriptive.items()
                if getattr(existing, key) is None and value is not None
            }
        )
        connection.execute(update(media).where(media.c.id == media_id).values(**values))
    else:
        twins = connection.execute(
            select(media.c.id, media.c.path, media.c.missing)
            .where(media.c.content_hash == content_hash, media.c.origin == "file")
            .order_by(media.c.id)
        ).all()
        gone = next((t for t in twins if t.missing or not Path(t.path).exists()), None)
        adopt = _catalog_record(connection, descriptive.get("external_id"))
        if (
            adopt is None
            and descriptive.get("external_id") is not None
            and _external_id_taken(connection, descriptive["external_id"])
        ):
            descriptive["external_id"] = None  # held by another file: keep it there
        if adopt is not None and gone is None:
            # The file of a record imported from a catalogue has arrived.
            media_id, action = adopt, "updated"
            values.update(
                {
                    key: value
                    for key, value in descriptive.items()
                    if key != "external_id" and value is not None
                }
            )
            values.update(path=str(path), origin="file")
            existing_values = connection.execute(select(media).where(media.c.id == adopt)).one()
            for key in _DESCRIPTIVE:
                if getattr(existing_values, key) is not None:
                    values.pop(key, None)
            work = _user_work(connection, media_id)
            kept.fields = _kept_fields(work, existing_values, path, descriptive)
            connection.execute(update(media).where(media.c.id == media_id).values(**values))
        elif gone is not None:
            media_id, action, previous_path = gone.id, "moved", gone.path
            work = _user_work(connection, media_id)
            connection.execute(
                update(media).where(media.c.id == media_id).values(path=str(path), **values)
            )
            connection.execute(
                insert(user_feedback).values(
                    media_id=media_id,
                    feedback_type="file_move",
                    original_value=gone.path,
                    corrected_value=str(path),
                    confidence_score=1.0,
                    timestamp=now,
                    source="ingest",
                )
            )
        else:
            if facts is None:  # content known only from a sibling: probe was skipped
                raise AssertionError("a new file is always probed")
            action = "duplicate" if twins else "new"
            media_id = connection.execute(
                insert(media)
                .values(
                    path=str(path),
                    origin="file",
                    created_at=now,
                    duplicate_of=twins[0].id if twins else None,
                    **values,
                    **{k: v for k, v in descriptive.items() if v is not None},
                )
                .returning(media.c.id)
            ).scalar_one()

    _replace_sidecars(connection, media_id, sidecars)
    if nfo is not None:
        tags, kept.removed_tags = keep_user_tags(work, _nfo_tags(nfo))
        upsert_tags(connection, media_id, tags)
    refresh_words(connection, [media_id])
    return FileIngest(media_id, action, str(path), previous_path, kept)


def _user_work(connection: Connection, media_id: int) -> UserWork:
    return load_user_work(connection, [media_id]).get(media_id, NO_WORK)


def _kept_fields(work: UserWork, row: Any, path: Path, descriptive: dict[str, Any]) -> int:
    """Fields the user edited that the file's metadata (or its .nfo) now says otherwise.

    Ingest fills only empty fields, so nothing more needs doing to keep them; a title
    made from the file name is no metadata and does not count.
    """
    said = dict(descriptive)
    if said.get("title") == _title_from_name(path):
        said["title"] = None
    return sum(
        1
        for name in work.fields
        if said.get(name) is not None and said[name] != getattr(row, name, None)
    )


def _catalog_record(connection: Connection, external_id: str | None) -> int | None:
    if external_id is None:
        return None
    found = connection.scalar(
        select(media.c.id).where(media.c.external_id == external_id, media.c.path.is_(None))
    )
    return int(found) if found is not None else None


def _external_id_taken(connection: Connection, external_id: str) -> bool:
    return (
        connection.scalar(select(media.c.id).where(media.c.external_id == external_id)) is not None
    )


def _facts(facts: ProbeResult) -> dict[str, Any]:
    return {
        "media_type": facts.media_type,
        "container": facts.container,
        "duration_s": facts.duration_s,
        "bitrate": facts.bitrate,
        "video_codec": facts.video_codec,
        "audio_codec": facts.audio_codec,
        "width": facts.width,
        "height": facts.height,
        "has_video": facts.has_video,
        "has_audio": facts.has_audio,
        "has_subtitles": facts.has_subtitles,
        "streams": facts.streams,
        "container_tags": facts.tags,
    }


def _descriptive(path: Path, facts: ProbeResult | None, nfo: NfoMetadata | None) -> dict[str, Any]:
    """Title, genre, ... from the .nfo first, then container tags, then the file name."""
    tags = facts.tags if facts is not None else {}
    nfo = nfo or NfoMetadata()
    genres = nfo.genres or [g.strip() for g in tags.get("genre", "").split(",") if g.strip()]
    year_text = tags.get("date") or tags.get("year") or ""
    return {
        "title": nfo.title or tags.get("title") or _title_from_name(path),
        "artist": nfo.artist or tags.get("artist") or tags.get("album_artist"),
        "genre": genres[0] if genres else None,
        "description": nfo.description
        or tags.get("description")
        or tags.get("synopsis")
        or tags.get("comment"),
        "year": nfo.year or (int(year_text[:4]) if year_text[:4].isdigit() else None),
        "runtime_min": nfo.runtime_min,
        "rating": nfo.rating,
        "external_id": nfo.external_id,
    }


def _title_from_name(path: Path) -> str:
    return " ".join(path.stem.replace("_", " ").replace(".", " ").split()) or path.name


def _nfo_tags(nfo: NfoMetadata) -> list[Tag]:
    # Metadata curated in another library manager counts as user-confirmed.
    tags = [
        Tag(tag, kind="genre", source="user", explanation="from the .nfo sidecar")
        for tag in parse_tag_list(nfo.genres)
    ]
    tags += [
        Tag(tag, kind="keyword", source="user", explanation="from the .nfo sidecar")
        for tag in parse_tag_list(nfo.tags)
    ]
    return tags


def _replace_sidecars(connection: Connection, media_id: int, sidecars: list[Sidecar]) -> None:
    connection.execute(delete(media_sidecars).where(media_sidecars.c.media_id == media_id))
    if sidecars:
        # A sidecar that belonged to another media row (a renamed twin) moves here.
        connection.execute(
            delete(media_sidecars).where(media_sidecars.c.path.in_([str(s.path) for s in sidecars]))
        )
        connection.execute(
            insert(media_sidecars),
            [
                {
                    "media_id": media_id,
                    "path": str(s.path),
                    "kind": s.kind,
                    "format": s.format,
                    "language": s.language,
                    "size_bytes": s.size_bytes,
                    "mtime": s.mtime,
                    "created_at": utcnow(),
                }
                for s in sidecars
            ],
        )
