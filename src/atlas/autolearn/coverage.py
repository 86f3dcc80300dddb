"""Coverage gaps: media not transcribed, not tagged, not embedded, or embedded from old text.

Each gap is a plain fact, so the rule is a count: at least one item in the gap
that has been in the library longer than a grace period (work queued for a new
item is not a gap yet). Stale means the embedding document of the item today
hashes differently from the one its vector was made from.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, exists, select

from atlas.autolearn.insights import Insight, Suggestion
from atlas.config import Settings
from atlas.db import database_errors
from atlas.db.tables import media, media_embeddings, media_tag_inputs, media_tags, transcripts
from atlas.embeddings import get_provider
from atlas.embeddings.repository import load_documents, recorded_embeddings

__all__ = ["GRACE", "RULES", "CoverageState", "coverage_state", "detect_coverage_insights"]

#: Items newer than this are left to the work already queued for them.
GRACE = timedelta(hours=1)
#: Example ids shown in an insight, at most.
EXAMPLES = 10

RULES = {
    "not-embedded": "items with words to embed but no vector from the configured model, "
    "in the library for over an hour",
    "other-model": "items whose only vector comes from an embedding model other than the "
    "configured one",
    "stale-vector": "items whose embedding document today hashes differently from the "
    "document their vector was made from (text, tags or transcript changed since)",
    "not-transcribed": "items with an audio stream and a file but no transcript, in the "
    "library for over an hour",
    "not-tagged": "items with words but no tag at all and never tagged automatically, in "
    "the library for over an hour",
}


class CoverageState:
    """The ids in each coverage gap, computed once per cycle."""

    def __init__(
        self,
        gaps: dict[str, list[int]],
        model: str,
        other_models: list[str],
        embedded_current: list[int],
    ) -> None:
        self.gaps = gaps
        self.model = model
        self.other_models = other_models
        #: Items whose vector from the configured model matches their text.
        self.embedded_current = embedded_current

    def count(self, gap: str) -> int:
        return len(self.gaps.get(gap, []))


def coverage_state(settings: Settings, engine: Engine, *, now: datetime) -> CoverageState:
    """Every coverage gap of the library now (read-only)."""
    model = get_provider(settings).model_id
    settled = now - GRACE
    with database_errors(engine), engine.connect() as connection:
        documents = load_documents(connection)
        recorded = recorded_embeddings(connection, model)
        present = set(
            connection.scalars(
                select(media.c.id).where(and_(~media.c.missing, media.c.created_at <= settled))
            )
        )
        other_rows = connection.execute(
            select(media_embeddings.c.media_id, media_embeddings.c.model).where(
                media_embeddings.c.model != model
            )
        ).all()
        untranscribed = set(
            connection.scalars(
                select(media.c.id).where(
                    media.c.has_audio,
                    media.c.path.is_not(None),
                    ~media.c.missing,
                    media.c.created_at <= settled,
                    ~exists().where(transcripts.c.media_id == media.c.id),
                )
            )
        )
        untagged = set(
            connection.scalars(
                select(media.c.id).where(
                    ~media.c.missing,
                    media.c.created_at <= settled,
                    ~exists().where(media_tags.c.media_id == media.c.id),
                    ~exists().where(
                        and_(
                            media_tag_inputs.c.media_id == media.c.id,
                            media_tag_inputs.c.tagged_at.is_not(None),
                        )
                    ),
                )
            )
        )
    embeddable = {m for m, doc in documents.items() if doc.embeddable and m in present}
    other_by_item: dict[int, str] = {row.media_id: row.model for row in other_rows}
    not_embedded = sorted(m for m in embeddable if m not in recorded and m not in other_by_item)
    other_model = sorted(m for m in embeddable if m not in recorded and m in other_by_item)
    stale = sorted(
        m for m in embeddable if m in recorded and recorded[m].doc_hash != documents[m].hash
    )
    gaps = {
        "not-embedded": not_embedded,
        "other-model": other_model,
        "stale-vector": stale,
        "not-transcribed": sorted(untranscribed),
        "not-tagged": sorted(m for m in untagged if m in embeddable),
    }
    others = sorted({other_by_item[m] for m in other_model})
    current = sorted(
        m for m in embeddable if m in recorded and recorded[m].doc_hash == documents[m].hash
    )
    return CoverageState(gaps, model, others, current)


_ACTIONS = {
    "not-embedded": ("embed", "media without a vector"),
    "other-model": ("embed", "media embedded only with another model"),
    "stale-vector": ("embed", "media with a stale vector"),
    "not-transcribed": ("transcribe", "media with audio but no transcript"),
    "not-tagged": ("tag", "media with no tags"),
}

_STATEMENTS = {
    "not-embedded": "{n} media items have no vector, so search and similar cannot find them",
    "other-model": "{n} media items are embedded only with {others}, not the configured {model}",
    "stale-vector": "{n} media items have a vector older than their text",
    "not-transcribed": "{n} media items with audio have no transcript",
    "not-tagged": "{n} media items have no tags",
}


def detect_coverage_insights(state: CoverageState) -> list[Insight]:
    """One coverage insight per non-empty gap, with a safe action that fills it."""
    found = []
    for gap, ids in state.gaps.items():
        if not ids:
            continue
        action, metric = _ACTIONS[gap]
        found.append(
            Insight(
                key=f"coverage:{gap}",
                kind="coverage",
                severity="warning" if gap in ("not-embedded", "stale-vector") else "info",
                statement=_STATEMENTS[gap].format(
                    n=len(ids), others=", ".join(state.other_models), model=state.model
                ),
                rule=RULES[gap],
                evidence={"count": len(ids), "media_ids": ids[:EXAMPLES], "model": state.model},
                suggestion=Suggestion(
                    action=action,
                    params={"gap": gap, "media_ids": list(ids)},
                    metric=metric,
                    baseline=float(len(ids)),
                ),
            )
        )
    return found
