"""The ``smart-transcribe`` service: pick media, submit one ``transcribe`` task per item.

Items are named by id, by file or folder (ingested first when unknown), by a
glob over their paths, or as "everything that still needs a transcript".
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select

from atlas.db import check_ids, database_errors
from atlas.db.tables import media, media_sidecars, transcripts
from atlas.errors import InvalidInput, NotFound
from atlas.media import ingest_paths
from atlas.tasks import Dispatcher, TaskOutcome
from atlas.transcription.models import check_language

__all__ = ["BatchItem", "TranscribeReport", "select_media", "transcribe_library"]

QUALITIES = ("fast", "balanced", "high")


@dataclass(frozen=True)
class BatchItem:
    """One media item (or one file that failed to ingest) of a run."""

    status: str  # transcribed | skipped | unchanged | queued | error
    media_id: int | None = None
    path: str | None = None
    task_id: int | None = None
    error: str | None = None
    #: The task's result for this item (``TranscriptionResult.to_dict()``).
    result: dict[str, Any] | None = None


@dataclass
class TranscribeReport:
    items: list[BatchItem] = field(default_factory=list)
    #: Items selected by ``--all``/``--batch`` that have neither audio nor subtitles.
    left_out: int = 0

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def failed(self) -> list[BatchItem]:
        return [item for item in self.items if item.status == "error"]

    def summary(self) -> dict[str, int]:
        statuses = ("transcribed", "skipped", "unchanged", "queued", "error")
        return {status: self.count(status) for status in statuses if self.count(status)}

    def sources(self) -> dict[str, int]:
        """How the transcribed items were transcribed: whisper, sidecar, embedded."""
        counts: dict[str, int] = {}
        for item in self.items:
            if item.status == "transcribed" and item.result:
                source = str(item.result.get("source"))
                counts[source] = counts.get(source, 0) + 1
        return counts


def transcribe_library(
    dispatcher: Dispatcher,
    *,
    media_ids: Sequence[int] = (),
    paths: Sequence[Path | str] = (),
    all_media: bool = False,
    batch: str | None = None,
    recursive: bool = False,
    force: bool = False,
    model: str | None = None,
    quality: str | None = None,
    language: str | None = None,
    chain: bool = False,
    wait: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_item: Callable[[BatchItem], None] | None = None,
) -> TranscribeReport:
    """Transcribe the selected media, one ``transcribe`` task (and task_logs row) each.

    Checks its arguments before doing anything (``InvalidInput``, ``NotFound``
    for an unknown id or path). Files not yet in the library are ingested first,
    in this process (without starting the processing chain). A media item whose transcript is
    current is reported ``unchanged`` and costs no task, unless ``force``.
    A failing item is reported in the result; the others go on.
    """
    if not (media_ids or paths or all_media or batch):
        raise InvalidInput(
            "say what to transcribe: `paths`, `media_ids`, `all` or `batch` (one of them)"
        )
    if quality is not None and quality not in QUALITIES:
        raise InvalidInput(f"unknown quality {quality!r}; use fast, balanced or high")
    language = check_language(language)
    engine = dispatcher.engine
    report = TranscribeReport()

    targets: list[int] = []
    explicit: list[int] = []
    if media_ids:
        explicit += _existing_ids(engine, media_ids)
    if paths:
        # Ingest here and now (even with a queue: the media ids are needed before
        # transcription can be submitted), and without the processing chain: this
        # command transcribes the files itself, with its own options.
        ingest_dispatcher = Dispatcher(
            dispatcher.settings.model_copy(update={"auto_process": False, "queue_url": None}),
            engine,
        )
        ingested = ingest_paths(ingest_dispatcher, paths, recursive=recursive)
        for entry in ingested.items:
            if entry.media_id is not None:
                explicit.append(entry.media_id)
            else:
                report.items.append(
                    BatchItem("error", path=entry.path, task_id=entry.task_id, error=entry.error)
                )
    if explicit:
        targets += _unique(explicit)
    if all_media or batch:
        selected, left_out = select_media(engine, glob=batch, force=force)
        targets += selected
        report.left_out = left_out
    targets = _unique(targets)

    current = set() if force else _current(engine, targets)
    if on_start is not None:
        on_start(len(targets) + len(report.items))
    if on_item is not None:
        for failed in report.items:
            on_item(failed)

    def record(item: BatchItem) -> None:
        report.items.append(item)
        if on_item is not None:
            on_item(item)

    submitted: dict[int, int] = {}  # task id -> media id
    paths_by_id = _paths(engine, targets)
    for media_id in targets:
        if media_id in current:
            record(BatchItem("unchanged", media_id, paths_by_id.get(media_id)))
            continue
        params = {
            "media_ids": [media_id],
            "chain": chain,
            "force": force,
            "model": model,
            "quality": quality,
            "language": language,
        }
        outcome = dispatcher.submit("transcribe", params)
        if outcome.finished:
            record(_item(media_id, paths_by_id.get(media_id), outcome))
        else:
            submitted[outcome.task_id] = media_id

    if submitted and wait:
        dispatcher.wait(
            list(submitted),
            on_finished=lambda o: record(
                _item(submitted[o.task_id], paths_by_id.get(submitted[o.task_id]), o)
            ),
        )
    else:
        for task_id, media_id in submitted.items():
            record(BatchItem("queued", media_id, paths_by_id.get(media_id), task_id))
    return report


def select_media(engine: Engine, *, glob: str | None, force: bool) -> tuple[list[int], int]:
    """Media with a present file that may hold speech or subtitles, optionally by glob.

    Without ``force``, only those without a current transcript. Returns the ids
    and how many matching items were left out for having neither audio nor subtitles.
    """
    has_sidecar = exists().where(
        and_(media_sidecars.c.media_id == media.c.id, media_sidecars.c.kind == "subtitle")
    )
    transcribable = or_(media.c.has_audio.is_(True), media.c.has_subtitles.is_(True), has_sidecar)
    query = select(media.c.id, media.c.path, transcribable.label("transcribable")).where(
        media.c.path.is_not(None), media.c.missing.is_(False)
    )
    if not force:
        current = exists().where(
            and_(
                transcripts.c.media_id == media.c.id,
                or_(
                    transcripts.c.content_hash == media.c.content_hash,
                    and_(transcripts.c.content_hash.is_(None), media.c.content_hash.is_(None)),
                ),
            )
        )
        query = query.where(~current)
    matcher = _glob_matcher(glob) if glob else None
    selected: list[int] = []
    left_out = 0
    with database_errors(engine), engine.connect() as connection:
        for row in connection.execute(query.order_by(media.c.id)):
            if matcher is not None and not matcher(row.path):
                continue
            if row.transcribable:
                selected.append(row.id)
            else:
                left_out += 1
    return selected, left_out


def _glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A pattern without a folder part matches file names; with one, whole paths.

    A relative folder pattern (``videos/*.mkv``) matches at any depth.
    """
    pattern = os.path.expanduser(pattern)
    if "/" not in pattern and os.sep not in pattern:
        return lambda path: fnmatch.fnmatchcase(Path(path).name, pattern)
    if not os.path.isabs(pattern):
        pattern = "*/" + pattern
    return lambda path: fnmatch.fnmatchcase(path, pattern)


def _existing_ids(engine: Engine, media_ids: Sequence[int]) -> list[int]:
    wanted = check_ids(_unique(media_ids))
    with database_errors(engine), engine.connect() as connection:
        found = set(connection.execute(select(media.c.id).where(media.c.id.in_(wanted))).scalars())
    for media_id in wanted:
        if media_id not in found:
            raise NotFound(f"no media with id {media_id}")
    return wanted


def _current(engine: Engine, media_ids: Sequence[int]) -> set[int]:
    """The ids whose transcript was made from the media's present content."""
    if not media_ids:
        return set()
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(media.c.id, media.c.content_hash, transcripts.c.content_hash.label("made_from"))
            .join(transcripts, transcripts.c.media_id == media.c.id)
            .where(media.c.id.in_(list(media_ids)))
        )
        return {row.id for row in rows if row.made_from == row.content_hash}


def _paths(engine: Engine, media_ids: Sequence[int]) -> dict[int, str | None]:
    if not media_ids:
        return {}
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(media.c.id, media.c.path).where(media.c.id.in_(list(media_ids)))
        )
        return {row.id: row.path for row in rows}


def _item(media_id: int, path: str | None, outcome: TaskOutcome) -> BatchItem:
    if outcome.ok and isinstance(outcome.result, dict) and outcome.result.get("items"):
        result = outcome.result["items"][0]
        return BatchItem(result["status"], media_id, path, outcome.task_id, result=result)
    if outcome.ok:
        return BatchItem("transcribed", media_id, path, outcome.task_id)
    return BatchItem(
        "error", media_id, path, outcome.task_id, error=outcome.error or f"task {outcome.status}"
    )


def _unique(values: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(int(value) for value in values))
