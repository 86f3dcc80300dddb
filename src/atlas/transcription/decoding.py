"""How Whisper decodes: the options, a collapsed window decoded again, segments kept in time.

Small Whisper models (the shipped tiny.en) sometimes *collapse* on a window of
speech: they decode a few words, then jump to a timestamp far ahead and stop,
so most of the window is lost and the one segment left is timed past the end of
the audio (seen: 8 words of 30 from an 8.3 s clip, timed 0.0 - 21.0 s). Three
things keep that from reaching a transcript:

- decoding options (``decode_options``): each window decoded on its own (no
  prompt from the previous one, so one bad window cannot drag the next into the
  same error), with Whisper's temperature fallback whenever a window's text is
  repetitive (compression-ratio guard) or improbable (log-probability guard);
- ``collapsed``: a segment carrying far fewer words a second than speech has,
  or one reaching past the audio, is decoded again on its own (``redecode``,
  without the voice-activity filter, from a clean context) and replaced when
  that finds more words;
- ``clip_to_audio``: no segment is kept outside the audio; one that starts at or
  after its end is dropped, one that reaches past it ends with it.

The settings (``TranscriptionSettings``) were chosen on a development split of
``benchmarks/speech_quality.py`` and are scored there on a separate test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from atlas.config import TranscriptionSettings

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "RawSegment",
    "clip_to_audio",
    "collapsed",
    "decode_options",
    "redecode",
    "rescale",
    "temperatures",
]

SAMPLE_RATE = 16_000
#: A window shorter than this is never judged collapsed (a pause, a short word).
_MIN_COLLAPSE_SPAN_S = 2.0
#: A segment may end this little past the audio before it counts as collapsed
#: (timestamps are rounded to 20 ms, the decoded audio may be a frame short).
_END_SLACK_S = 0.25
#: Audio kept either side of a window decoded again.
_REDECODE_PAD_S = 0.2


@dataclass(frozen=True)
class RawSegment:
    """One decoded segment, before it is judged and kept or dropped."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    tokens: int

    @property
    def words(self) -> int:
        return len(self.text.split())

    @classmethod
    def of(cls, segment: Any, offset_s: float = 0.0) -> RawSegment:
        """From a faster-whisper ``Segment`` (times shifted by ``offset_s``)."""
        return cls(
            start=float(segment.start) + offset_s,
            end=float(segment.end) + offset_s,
            text=str(segment.text).strip(),
            avg_logprob=float(segment.avg_logprob),
            no_speech_prob=float(segment.no_speech_prob),
            tokens=len(segment.tokens),
        )


def temperatures(settings: TranscriptionSettings) -> tuple[float, ...]:
    """0, then ``temperature_step`` apart up to 1.0; just (0,) with no step (no fallback)."""
    step = settings.temperature_step
    if step <= 0:
        return (0.0,)
    count = math.floor(1.0 / step + 1e-9)
    return tuple(round(min(1.0, index * step), 4) for index in range(count + 1))


def decode_options(
    settings: TranscriptionSettings, language: str | None, *, vad: bool | None = None
) -> dict[str, Any]:
    """The keyword arguments of ``WhisperModel.transcribe`` for these settings."""
    use_vad = settings.vad_filter if vad is None else vad
    options: dict[str, Any] = {
        "language": language,
        "beam_size": settings.beam_size,
        "temperature": list(temperatures(settings)),
        "compression_ratio_threshold": settings.compression_ratio_threshold,
        "log_prob_threshold": settings.log_prob_threshold,
        "no_speech_threshold": settings.no_speech_threshold,
        "condition_on_previous_text": settings.condition_on_previous_text,
        "vad_filter": use_vad,
        "initial_prompt": None,
    }
    if use_vad:
        options["vad_parameters"] = {
            "threshold": settings.vad_threshold,
            "min_silence_duration_ms": settings.vad_min_silence_ms,
            "speech_pad_ms": settings.vad_speech_pad_ms,
        }
    return options


def collapsed(segment: RawSegment, audio_s: float, settings: TranscriptionSettings) -> bool:
    """Whether ``segment`` looks like a collapsed window (see the module's docstring)."""
    if segment.end > audio_s + _END_SLACK_S:
        return True
    limit = settings.collapse_words_per_second
    span = min(segment.end, audio_s) - segment.start
    if limit <= 0 or span < _MIN_COLLAPSE_SPAN_S:
        return False
    return segment.words / span < limit


def redecode(
    model: Any,
    audio: np.ndarray,
    segment: RawSegment,
    settings: TranscriptionSettings,
    language: str | None,
) -> list[RawSegment] | None:
    """``segment``'s window decoded again on its own; None when that finds no more words."""
    audio_s = len(audio) / SAMPLE_RATE
    start = max(0.0, segment.start - _REDECODE_PAD_S)
    end = min(audio_s, segment.end + _REDECODE_PAD_S)
    if end - start < 0.1:
        return None
    window = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    options = decode_options(settings, language, vad=False)
    options["condition_on_previous_text"] = False
    raw, _info = model.transcribe(window, **options)
    found = [RawSegment.of(item, offset_s=start) for item in raw]
    found = [item for item in found if item.text]
    if sum(item.words for item in found) <= segment.words:
        return None
    return found


def rescale(segments: list[RawSegment], factor: float) -> list[RawSegment]:
    """Segments with their times multiplied by ``factor`` (slowed audio back to real time)."""
    if factor == 1.0:
        return segments
    return [replace(s, start=s.start * factor, end=s.end * factor) for s in segments]


def clip_to_audio(segments: list[RawSegment], audio_s: float) -> tuple[list[RawSegment], int]:
    """Segments inside ``[0, audio_s]``: ones starting at or past the end dropped, the rest cut.

    Returns the segments kept and how many were dropped.
    """
    kept: list[RawSegment] = []
    dropped = 0
    for segment in segments:
        start = max(0.0, segment.start)
        if start >= audio_s:
            dropped += 1
            continue
        end = min(max(segment.end, start), audio_s)
        if (start, end) != (segment.start, segment.end):
            segment = replace(segment, start=start, end=end)
        kept.append(segment)
    return kept, dropped
