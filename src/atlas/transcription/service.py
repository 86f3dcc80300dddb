"""Transcribe one media item the smart way, and the ``transcribe`` task.

For each item, in order: a transcript already made from the same content is
kept (unless ``force``); a subtitle sidecar (.srt/.vtt) is read; an embedded
text subtitle stream is extracted; and only then is the audio run through
Whisper. A catalogue record without a file has nothing to transcribe; a file
without an audio stream (and without subtitles) is refused with a clear reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from atlas.config import TranscriptionSettings
from atlas.db import check_id, database_errors
from atlas.db.tables import media, media_sidecars, transcripts
from atlas.errors import AtlasError, InvalidInput, NotFound, Unavailable
from atlas.tasks import TaskContext, task_type
from atlas.tasks.pipeline import schedule_next
from atlas.transcription.models import check_language, resolve_model
from atlas.transcription.store import save_transcript
from atlas.transcription.subtitles import (
    extract_embedded,
    language_code,
    pick_stream,
    read_sidecar,
)
from atlas.transcription.whisper import (
    Transcript,
    get_transcriber,
    resolve_compute_type,
    resolve_device,
)

__all__ = [
    "NoAudio",
    "TranscribeOptions",
    "TranscriptionResult",
    "transcribe_media",
    "transcribe_task",
]


class NoAudio(InvalidInput):
    """The media item has no audio stream (and no subtitles) to transcribe."""


@dataclass(frozen=True)
class TranscribeOptions:
    """What the user asked for; ``None`` means: as the settings say."""

    force: bool = False
    model: str | None = None
    quality: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class TranscriptionResult:
    """What transcribing one media item did."""

    media_id: int
    status: str  # transcribed | skipped
    path: str | None = None
    title: str | None = None
    source: str | None = None
    model: str | None = None
    language: str | None = None
    language_probability: float | None = None
    words: int = 0
    segments: int = 0
    audio_duration_s: float | None = None
    wall_time_s: float | None = None
    real_time_factor: float | None = None
    device: str | None = None
    compute_type: str | None = None
    #: Why it was skipped, or notes on how it was transcribed.
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def transcribe_media(
    engine: Engine,
    settings: TranscriptionSettings,
    media_id: int,
    options: TranscribeOptions | None = None,
    *,
    chained: bool = False,
    checkpoint: Callable[[], None] | None = None,
) -> TranscriptionResult:
    """Transcribe one media item and store its transcript (an upsert, one transaction).

    ``chained``: called by the processing chain, where records without a file
    and still images are skipped quietly instead of being refused.
    ``checkpoint()`` is called while the model works (cancellation checks).
    Raises ``NotFound`` (unknown id, file gone), ``NoAudio``, ``InvalidInput``
    (broken audio, a language the model cannot do, a bad model name) and
    ``Unavailable`` (a model not on this machine).
    """
    options = options or TranscribeOptions()
    check_id(media_id)
    with database_errors(engine), engine.connect() as connection:
        item = connection.execute(select(media).where(media.c.id == media_id)).first()
        if item is None:
            raise NotFound(f"no media with id {media_id}")
        existing = connection.execute(
            select(transcripts.c.source, transcripts.c.content_hash).where(
                transcripts.c.media_id == media_id
            )
        ).first()
        sidecars = connection.execute(
            select(media_sidecars.c.path, media_sidecars.c.language)
            .where(media_sidecars.c.media_id == media_id, media_sidecars.c.kind == "subtitle")
            .order_by(media_sidecars.c.path)
        ).all()

    def skipped(reason: str) -> TranscriptionResult:
        return TranscriptionResult(media_id, "skipped", item.path, item.title, reason=reason)

    if item.path is None:
        if chained:
            return skipped("a catalogue record without a file")
        raise InvalidInput(
            f"media {media_id} is a catalogue record without a file; nothing to transcribe"
        )
    if chained and item.media_type == "image":
        return skipped("a still image has no speech")
    path = Path(item.path)
    if item.missing or not path.is_file():
        raise NotFound(f"{path}: the file is gone (media {media_id}); ingest its new location")
    if existing is not None and not options.force and existing.content_hash == item.content_hash:
        return skipped(f"already transcribed (from {existing.source}); use `force` to redo")

    language = check_language(options.language or settings.language)
    transcript: Transcript | None = None
    notes: list[str] = []
    if settings.prefer_subtitles and not options.force:
        transcript = _from_subtitles(path, item.streams, sidecars, language, notes)
    if transcript is None:
        if not item.has_audio:
            raise NoAudio(f"{path}: no audio stream, nothing to transcribe (media {media_id})")
        transcript = _from_speech(path, item, settings, options, language, checkpoint)
    save_transcript(engine, media_id, transcript, item.content_hash)
    return TranscriptionResult(
        media_id=media_id,
        status="transcribed",
        path=item.path,
        title=item.title,
        source=transcript.source,
        model=transcript.model,
        language=transcript.language,
        language_probability=transcript.language_probability,
        words=transcript.words,
        segments=len(transcript.segments),
        audio_duration_s=transcript.audio_duration_s,
        wall_time_s=transcript.wall_time_s,
        real_time_factor=_round(transcript.real_time_factor),
        device=transcript.device,
        compute_type=transcript.compute_type,
        reason=transcript.source_detail if transcript.source != "whisper" else None,
        notes=notes + transcript.notes,
    )


def _from_subtitles(
    path: Path,
    streams: Sequence[dict[str, Any]] | None,
    sidecars: Sequence[Any],
    language: str | None,
    notes: list[str],
) -> Transcript | None:
    """A sidecar's or an embedded stream's transcript, the asked language first."""

    def rank(sidecar: Any) -> int:
        code = language_code(sidecar.language)
        if language is not None and code == language:
            return 0
        return 1 if code in (None, "en") else 2

    for sidecar in sorted(sidecars, key=rank):
        if language is not None and language_code(sidecar.language) not in (None, language):
            continue
        found = read_sidecar(Path(sidecar.path), language=language_code(sidecar.language))
        if found is not None:
            return found
        notes.append(f"sidecar {Path(sidecar.path).name} is gone or has no cues")
    stream = pick_stream(streams, language)
    if stream is None:
        return None
    tag = language_code(stream.get("language"))
    if language is not None and tag not in (None, language):
        return None
    try:
        embedded = extract_embedded(path, stream)
    except InvalidInput as exc:
        notes.append(f"embedded subtitles unusable: {exc.message}")
        return None
    if embedded is None:
        notes.append(f"embedded subtitle stream {stream.get('index')} has no cues")
    return embedded


def _from_speech(
    path: Path,
    item: Any,
    settings: TranscriptionSettings,
    options: TranscribeOptions,
    language: str | None,
    checkpoint: Callable[[], None] | None,
) -> Transcript:
    choice = resolve_model(
        settings,
        model=options.model,
        quality=options.quality,
        duration_s=item.duration_s,
        language=language,
    )
    device = resolve_device(settings.device)
    compute_type = resolve_compute_type(settings.compute_type, device)
    transcriber = get_transcriber(choice, device, compute_type, settings.cpu_threads)
    return transcriber.transcribe(
        path,
        settings,
        language=language,
        expected_duration_s=_audio_duration(item),
        checkpoint=checkpoint,
    )


def _audio_duration(item: Any) -> float | None:
    for stream in item.streams or []:
        if stream.get("codec_type") == "audio":
            try:
                return float(stream["duration"])
            except (KeyError, TypeError, ValueError):
                break
    return float(item.duration_s) if item.duration_s else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- the task ------------------------------------------------------------------


@task_type("transcribe", retries=1, retry_delay_s=1.0)
def transcribe_task(
    ctx: TaskContext,
    media_ids: list[int],
    chain: bool = False,
    force: bool = False,
    model: str | None = None,
    quality: str | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """Transcribe media items (subtitles first, else Whisper) and store their transcripts.

    Items are done one by one; one that fails does not stop the others, and the
    task ends in ``error`` with the failures' reasons. In a chain, the next
    stage is scheduled for every item that did not fail (a file without audio
    still gets tagged and embedded).
    """
    options = TranscribeOptions(force=force, model=model, quality=quality, language=language)
    done: list[dict[str, Any]] = []
    follow: list[int] = []
    failures: list[AtlasError] = []
    for media_id in media_ids:
        ctx.raise_if_cancelled()
        try:
            result = transcribe_media(
                ctx.engine,
                ctx.settings.transcription,
                media_id,
                options,
                chained=chain,
                checkpoint=ctx.raise_if_cancelled,
            )
        except NoAudio as exc:
            follow.append(media_id)
            failures.append(exc)
        except AtlasError as exc:
            failures.append(exc)
        else:
            done.append(result.to_dict())
            follow.append(media_id)
    # A transient failure is retried, and the retry schedules the next stage.
    transient = any(failure.transient for failure in failures)
    if chain and not transient:
        schedule_next(ctx, "transcribe", follow)
    if len(failures) == 1 and len(media_ids) == 1:
        raise failures[0]
    if failures:
        shown = "; ".join(f.message for f in failures[:3]) + ("; ..." if len(failures) > 3 else "")
        message = f"{len(failures)} of {len(media_ids)} items failed: {shown}"
        raise Unavailable(message) if transient else InvalidInput(message)
    return {"items": done}
