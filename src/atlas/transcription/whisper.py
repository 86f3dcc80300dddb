"""The faster-whisper model wrapper (the Immich pattern): lazy load, one per process.

``get_transcriber(choice, device, compute_type)`` returns the cached wrapper of
one (model, device, compute type); the model itself is loaded on the first
``transcribe()``. Audio is decoded by ffmpeg (16 kHz mono), so every format
ffprobe accepted at ingest can be transcribed, and a broken audio stream is
recognised (far less audio decodes than the file declares) instead of being
transcribed in part.

Decoding itself (options, a collapsed window decoded again, segments kept
inside the audio) is ``atlas.transcription.decoding``. Speech reaches Whisper
slowed down (``speech_tempo``; fast speech, read from the audio by
``atlas.transcription.speech_rate``, to ``fast_speech_tempo``), its times
mapped back to the recording's.

Silence is kept from becoming text twice over: the Silero voice-activity
filter shipped inside faster-whisper cuts non-speech out before decoding, and
segments Whisper itself marks as probably not speech, or decodes with very
low confidence, are dropped.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atlas.caches import CACHES
from atlas.config import TranscriptionSettings
from atlas.errors import InvalidInput, Unavailable, missing_extra
from atlas.media.probe import require_tool
from atlas.transcription.decoding import (
    RawSegment,
    clip_to_audio,
    collapsed,
    decode_options,
    redecode,
    rescale,
)
from atlas.transcription.models import ModelChoice, cuda_device_count
from atlas.transcription.speech_rate import loudness_peaks_per_second

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SAMPLE_RATE",
    "Transcript",
    "TranscriptSegment",
    "WhisperTranscriber",
    "decode_audio",
    "get_transcriber",
    "resolve_compute_type",
    "resolve_device",
]

SAMPLE_RATE = 16_000
# A stream that decodes to less than this share of its declared length is broken.
_MIN_DECODED_SHARE = 0.5
# Whisper's own rule: a segment probably not speech AND not confidently decoded.
_UNSURE_LOGPROB = -0.5
_DECODE_TIMEOUT_S = 1800


@dataclass(frozen=True)
class TranscriptSegment:
    start: float
    end: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Transcript:
    """Speech as text, with where it came from and how long it took."""

    text: str
    segments: list[TranscriptSegment]
    source: str  # whisper | sidecar | embedded
    language: str | None = None
    language_probability: float | None = None
    model: str | None = None
    avg_logprob: float | None = None
    audio_duration_s: float | None = None
    wall_time_s: float | None = None
    device: str | None = None
    compute_type: str | None = None
    source_detail: str | None = None
    #: Segments dropped as probable hallucinations (not stored).
    dropped_segments: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def real_time_factor(self) -> float | None:
        """Wall seconds per audio second (lower is faster); Whisper transcripts only."""
        if self.source != "whisper" or not self.audio_duration_s or self.wall_time_s is None:
            return None
        return self.wall_time_s / self.audio_duration_s

    @property
    def words(self) -> int:
        return len(self.text.split())


def resolve_device(setting: str) -> str:
    """``auto`` -> ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if setting == "auto":
        return "cuda" if cuda_device_count() > 0 else "cpu"
    if setting == "cuda" and cuda_device_count() == 0:
        raise Unavailable(
            "transcription.device is 'cuda' but CTranslate2 sees no CUDA device; "
            "set transcription.device to auto or cpu"
        )
    return setting


def resolve_compute_type(setting: str, device: str) -> str:
    """``auto`` -> int8 on the CPU, float16 on CUDA."""
    if setting == "auto":
        return "float16" if device == "cuda" else "int8"
    return setting


class WhisperTranscriber:
    """One Whisper model on one device; loaded on first use, then reused."""

    def __init__(self, choice: ModelChoice, device: str, compute_type: str, cpu_threads: int = 0):
        self.choice = choice
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> Any:
        """Load the model (once); ``Unavailable`` when its files cannot be loaded."""
        with self._lock:
            if self._model is None:
                try:
                    from faster_whisper import WhisperModel
                except ModuleNotFoundError:
                    raise missing_extra("faster-whisper (speech to text)") from None

                try:
                    self._model = WhisperModel(
                        str(self.choice.path),
                        device=self.device,
                        compute_type=self.compute_type,
                        cpu_threads=self.cpu_threads,
                        local_files_only=True,
                    )
                except (RuntimeError, ValueError, OSError) as exc:
                    detail = " ".join(str(exc).split())
                    raise Unavailable(
                        f"cannot load Whisper model {self.choice.name} on {self.device} "
                        f"({self.compute_type}): {detail} (settings transcription.model, "
                        "transcription.device, transcription.compute_type)"
                    ) from None
            return self._model

    @property
    def english_only(self) -> bool:
        return not bool(self.load().model.is_multilingual)

    def transcribe(
        self,
        path: Path,
        settings: TranscriptionSettings,
        *,
        language: str | None = None,
        expected_duration_s: float | None = None,
        checkpoint: Callable[[], None] | None = None,
    ) -> Transcript:
        """Transcribe the audio of ``path``.

        ``checkpoint()`` is called after each decoded segment (a task passes its
        cancellation check, so a long file can be stopped). Raises
        ``InvalidInput`` for a language the model cannot transcribe and for
        audio that cannot be decoded (``decode_audio``).
        """
        model = self.load()
        if language not in (None, "en") and self.english_only:
            raise InvalidInput(
                f"the Whisper model {self.choice.name} understands English only; to transcribe "
                f"language {language}, choose a multilingual model (setting "
                "transcription.model, e.g. small or a local model folder)"
            )
        clock = time.perf_counter()
        # Speech is decoded slowed down (ffmpeg slows it as it decodes it), fast speech
        # more: its pace is read from the audio, so Whisper decodes every file once.
        tempo = settings.speech_tempo
        audio = decode_audio(path, expected_duration_s=expected_duration_s, tempo=tempo)
        audio_s = len(audio) / SAMPLE_RATE * tempo
        threshold = settings.fast_speech_peaks_per_second
        rate = 0.0
        if threshold > 0 and settings.fast_speech_tempo < tempo:
            rate = loudness_peaks_per_second(audio) / tempo  # at the recorded speed
        fast = threshold > 0 and settings.fast_speech_tempo < tempo and rate > threshold
        if fast:
            tempo = settings.fast_speech_tempo
            audio = decode_audio(path, expected_duration_s=expected_duration_s, tempo=tempo)
        segments, info, redecoded = _decode(model, audio, settings, language, checkpoint)
        segments = rescale(segments, tempo)
        segments, dropped = clip_to_audio(segments, audio_s)
        kept: list[TranscriptSegment] = []
        logprob_sum = 0.0
        token_count = 0
        for raw in segments:
            if not raw.text:
                continue
            unsure = raw.avg_logprob < _UNSURE_LOGPROB
            if (raw.no_speech_prob > settings.no_speech_threshold and unsure) or (
                raw.avg_logprob < settings.min_avg_logprob
            ):
                dropped += 1
                continue
            kept.append(
                TranscriptSegment(
                    start=round(raw.start, 3),
                    end=round(raw.end, 3),
                    text=raw.text,
                    avg_logprob=round(raw.avg_logprob, 4),
                    no_speech_prob=round(raw.no_speech_prob, 4),
                )
            )
            tokens = max(1, raw.tokens)
            logprob_sum += raw.avg_logprob * tokens
            token_count += tokens
        notes = [self.choice.reason] if self.choice.reason.startswith("`quality`") else []
        if redecoded:
            notes.append(f"{redecoded} collapsed window(s) decoded again")
        if fast:
            notes.append(f"fast speech ({rate:.1f} loudness peaks/s) decoded slowed to {tempo:g}")
        wall = time.perf_counter() - clock
        return Transcript(
            text=" ".join(segment.text for segment in kept),
            segments=kept,
            source="whisper",
            language=info.language,
            language_probability=round(float(info.language_probability), 4),
            model=self.choice.name,
            avg_logprob=round(logprob_sum / token_count, 4) if token_count else None,
            audio_duration_s=round(audio_s, 3),
            wall_time_s=round(wall, 3),
            device=self.device,
            compute_type=self.compute_type,
            source_detail=str(self.choice.path),
            dropped_segments=dropped,
            notes=notes,
        )


def _decode(
    model: Any,
    audio: np.ndarray,
    settings: TranscriptionSettings,
    language: str | None,
    checkpoint: Callable[[], None] | None,
) -> tuple[list[RawSegment], Any, int]:
    """Segments of ``audio`` (its own time), each collapsed window decoded again.

    Returns the segments, faster-whisper's ``TranscriptionInfo`` and how many
    windows were decoded again.
    """
    raw_segments, info = model.transcribe(audio, **decode_options(settings, language))
    decoded: list[RawSegment] = []
    for raw in raw_segments:
        if checkpoint is not None:
            checkpoint()
        decoded.append(RawSegment.of(raw))
    audio_s = len(audio) / SAMPLE_RATE
    redecoded = 0
    segments: list[RawSegment] = []
    for segment in decoded:
        again = (
            redecode(model, audio, segment, settings, language)
            if segment.text and collapsed(segment, audio_s, settings)
            else None
        )
        if again is None:
            segments.append(segment)
            continue
        redecoded += 1
        segments.extend(again)
        if checkpoint is not None:
            checkpoint()
    return segments, info, redecoded


def get_transcriber(
    choice: ModelChoice, device: str, compute_type: str, cpu_threads: int = 0
) -> WhisperTranscriber:
    """The process-wide wrapper of this model on this device (made on first use)."""
    key = (str(choice.path), device, compute_type, cpu_threads)
    return CACHES.transcribers.get(
        key, lambda: WhisperTranscriber(choice, device, compute_type, cpu_threads)
    )


def decode_audio(
    path: Path, *, expected_duration_s: float | None = None, tempo: float = 1.0
) -> np.ndarray:
    """The first audio stream of ``path`` as 16 kHz mono float32, decoded by ffmpeg.

    ``tempo`` < 1 slows it down (pitch kept): the array is ``1 / tempo`` times longer.

    Raises ``InvalidInput`` when ffmpeg cannot decode it, when it decodes to
    nothing, or to less than half of ``expected_duration_s`` (a broken stream).
    """
    import numpy as np

    ffmpeg = require_tool("ffmpeg")
    command = [
        ffmpeg, "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        *(["-af", f"atempo={tempo:g}"] if tempo != 1.0 else []),
        "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-",
    ]  # fmt: skip
    try:
        completed = subprocess.run(
            command, capture_output=True, timeout=_DECODE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(
            f"{path}: decoding the audio took longer than {_DECODE_TIMEOUT_S}s"
        ) from None
    errors = [
        line.strip()
        for line in completed.stderr.decode("utf-8", "replace").splitlines()
        if line.strip()
    ]
    detail = _first_error(errors, path)
    if completed.returncode != 0:
        reason = detail or f"ffmpeg exit code {completed.returncode}"
        raise InvalidInput(f"{path}: the audio stream cannot be decoded ({reason})")
    samples = np.frombuffer(completed.stdout, dtype=np.int16)
    if samples.size == 0:
        reason = f" ({detail})" if detail else ""
        raise InvalidInput(f"{path}: the audio stream is empty or cannot be decoded{reason}")
    seconds = samples.size / SAMPLE_RATE * tempo
    expected = expected_duration_s or 0.0
    if expected > 1.0 and seconds < _MIN_DECODED_SHARE * expected:
        reason = f"; {detail}" if detail else ""
        raise InvalidInput(
            f"{path}: the audio stream is broken: only {seconds:.1f}s of "
            f"{expected:.1f}s could be decoded{reason}"
        )
    return samples.astype(np.float32) / 32768.0


def _first_error(lines: list[str], path: Path) -> str:
    for line in lines:
        # "[mp3float @ 0x55..] Header missing" -> "Header missing"
        if line.startswith("[") and "] " in line:
            line = line.split("] ", 1)[1]
        return line.replace(f"{path}: ", "")
    return ""
