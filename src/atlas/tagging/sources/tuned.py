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
from atlas.tagging.sources import Evidence, SourceResult

__all__ = ["tuned"]


def tuned(settings: Settings, engine: Engine, items: Sequence[TagInput]) -> dict[int, SourceResult]:
    """Evidence of the fine-tuned model for the items (empty before one was trained)."""
    from atlas.tagging.tuning import latest_tuned_model

    results = {item.media_id: SourceResult("tuned") for item in items}
    model = latest_tuned_model(settings, engine)
    if model is None or not items:
        return results
    scores = model.predict(settings, [item.text for item in items])
    judged = {tag.norm for tag in model.tags}
    for row, item in enumerate(items):
        result = results[item.media_id]
        result.judged.update(judged)
        for column, tag in enumerate(model.tags):
            score = float(scores[row, column])
            if score < 0.01:
                continue
            result.add(
                Evidence(
                    tag=tag.tag,
                    norm=tag.norm,
                    kind=tag.kind,
                    score=score,
                    detail=f"fine-tuned model {score:.2f} (trained on {model.items} items)",
                )
            )
    return results
