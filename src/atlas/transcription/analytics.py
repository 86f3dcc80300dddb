"""How fast transcription runs: throughput by model, from the stored transcripts.

Each media item keeps its latest transcript, so the figures describe the
transcripts in the library now (a re-transcription replaces the old figures).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from atlas.db import database_errors
from atlas.db.tables import task_logs, transcripts

__all__ = ["ModelThroughput", "TranscriptionAnalytics", "transcription_analytics"]


@dataclass(frozen=True)
class ModelThroughput:
    model: str
    device: str | None
    compute_type: str | None
    transcripts: int
    audio_s: float
    wall_s: float
    #: Mean of the per-file real-time factors (wall seconds per audio second).
    mean_rtf: float | None

    @property
    def throughput(self) -> float | None:
        """Audio seconds transcribed per wall-clock second (all files together)."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "throughput": self.throughput}


@dataclass(frozen=True)
class TranscriptionAnalytics:
    by_model: list[ModelThroughput] = field(default_factory=list)
    #: Transcripts by source: whisper, sidecar, embedded.
    by_source: dict[str, int] = field(default_factory=dict)
    #: Runs of the ``transcribe`` task by status, from task_logs.
    task_runs: dict[str, int] = field(default_factory=dict)
    #: Mean duration of completed ``transcribe`` runs, in milliseconds.
    mean_task_ms: float | None = None

    @property
    def transcripts(self) -> int:
        return sum(self.by_source.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "transcripts": self.transcripts,
            "by_source": self.by_source,
            "by_model": [row.to_dict() for row in self.by_model],
            "task_runs": self.task_runs,
            "mean_task_ms": self.mean_task_ms,
        }


def transcription_analytics(engine: Engine) -> TranscriptionAnalytics:
    """Throughput and real-time factor per (model, device, compute type), and counts."""
    t = transcripts
    with database_errors(engine), engine.connect() as connection:
        model_rows = connection.execute(
            select(
                t.c.model,
                t.c.device,
                t.c.compute_type,
                func.count().label("n"),
                func.coalesce(func.sum(t.c.audio_duration_s), 0.0).label("audio_s"),
                func.coalesce(func.sum(t.c.wall_time_s), 0.0).label("wall_s"),
                func.avg(t.c.real_time_factor).label("mean_rtf"),
            )
            .where(t.c.source == "whisper")
            .group_by(t.c.model, t.c.device, t.c.compute_type)
            .order_by(func.count().desc(), t.c.model)
        ).all()
        source_rows = connection.execute(
            select(t.c.source, func.count()).group_by(t.c.source).order_by(t.c.source)
        ).all()
        run_rows = connection.execute(
            select(task_logs.c.status, func.count())
            .where(task_logs.c.task_type == "transcribe")
            .group_by(task_logs.c.status)
            .order_by(task_logs.c.status)
        ).all()
        mean_ms = connection.scalar(
            select(func.avg(task_logs.c.duration_ms)).where(
                task_logs.c.task_type == "transcribe", task_logs.c.status == "completed"
            )
        )
    return TranscriptionAnalytics(
        by_model=[
            ModelThroughput(
                model=row.model or "?",
                device=row.device,
                compute_type=row.compute_type,
                transcripts=int(row.n),
                audio_s=round(float(row.audio_s), 3),
                wall_s=round(float(row.wall_s), 3),
                mean_rtf=None if row.mean_rtf is None else round(float(row.mean_rtf), 4),
            )
            for row in model_rows
        ],
        by_source={str(source): int(count) for source, count in source_rows},
        task_runs={str(status): int(count) for status, count in run_rows},
        mean_task_ms=None if mean_ms is None else round(float(mean_ms), 1),
    )
