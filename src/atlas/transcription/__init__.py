"""Speech to text: faster-whisper (CTranslate2) behind a small cached wrapper, with
subtitle sidecars and embedded subtitle streams preferred to the model."""

from atlas.transcription.analytics import (
    ModelThroughput,
    TranscriptionAnalytics,
    transcription_analytics,
)
from atlas.transcription.batch import BatchItem, TranscribeReport, select_media, transcribe_library
from atlas.transcription.models import (
    BUNDLED_MODEL,
    Hardware,
    ModelChoice,
    check_language,
    choose_model,
    detect_hardware,
    resolve_model,
)
from atlas.transcription.service import (
    NoAudio,
    TranscribeOptions,
    TranscriptionResult,
    transcribe_media,
)
from atlas.transcription.store import TranscriptSummary, save_transcript, transcript_summaries
from atlas.transcription.subtitles import parse_subtitles
from atlas.transcription.whisper import (
    Transcript,
    TranscriptSegment,
    WhisperTranscriber,
    decode_audio,
    get_transcriber,
)

__all__ = [
    "BUNDLED_MODEL",
    "BatchItem",
    "Hardware",
    "ModelChoice",
    "ModelThroughput",
    "NoAudio",
    "TranscribeOptions",
    "TranscribeReport",
    "Transcript",
    "TranscriptSegment",
    "TranscriptSummary",
    "TranscriptionAnalytics",
    "TranscriptionResult",
    "WhisperTranscriber",
    "check_language",
    "choose_model",
    "decode_audio",
    "detect_hardware",
    "get_transcriber",
    "parse_subtitles",
    "resolve_model",
    "save_transcript",
    "select_media",
    "transcribe_library",
    "transcribe_media",
    "transcript_summaries",
    "transcription_analytics",
]
