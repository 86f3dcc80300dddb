"""Tags from the tagger's text model fine-tuned on the library's confirmed tags.

After ``atlas media-tags train`` (:mod:`atlas.tagging.tuning`), the newest
fine-tuned model of the configured embedding model scores each of its tags for
the item's tagger text; the probability is the score. The source judges every
tag the model was trained on, and nothing before a model was trained.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from atlas.config import Settings
from atlas.tagging.inputs import TagInput
from atlas.tagging.sources import SourceResult, learned_evidence

__all__ = ["tuned"]


def tuned(settings: Settings, engine: Engine, items: Sequence[TagInput]) -> dict[int, SourceResult]:
    """Evidence of the fine-tuned model for the items (empty before one was trained)."""
    from atlas.tagging.tuning import latest_tuned_model

    model = latest_tuned_model(settings, engine)
    if model is None or not items:
        return {item.media_id: SourceResult("tuned") for item in items}
    return learned_evidence(
        "tuned",
        [item.media_id for item in items],
        model.tags,
        model.predict(settings, [item.text for item in items]),
        lambda _, score: f"fine-tuned model {score:.2f} (trained on {model.items} items)",
    )
