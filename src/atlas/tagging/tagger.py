"""The automatic tagger: every source on a batch of items, combined into predictions.

:func:`predict_tags` writes nothing but the vector cache (``media_tag_inputs``):
it is what ``media-tags retag`` stores (:mod:`atlas.tagging.store`) and what the
benchmark measures. The embedding model is the configured one, loaded once per
process; the vocabulary's label vectors, the learned profiles and the fine-tuned
model (:mod:`atlas.tagging.tuning`) are cached too. The source weights, threshold
and genre floor are those learned on the library when it has learned them
(:func:`atlas.tagging.selftune_store.tuned_settings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from atlas.config import Settings
from atlas.embeddings import get_provider
from atlas.tagging.combine import TagPrediction, combine
from atlas.tagging.cutoffs import learned_cutoffs
from atlas.tagging.inputs import TagInput, input_hash, input_vectors
from atlas.tagging.selftune_store import tuned_settings
from atlas.tagging.sources import SourceResult
from atlas.tagging.sources.keyphrases import keyphrases
from atlas.tagging.sources.llm import llm_tags
from atlas.tagging.sources.neighbours import neighbours
from atlas.tagging.sources.profiles import profiles
from atlas.tagging.sources.tuned import tuned
from atlas.tagging.sources.zero_shot import zero_shot
from atlas.tagging.vocabulary import Vocabulary, load_vocabulary

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

__all__ = ["ItemPrediction", "hash_inputs", "predict_tags", "tagging_fingerprint"]

#: Settings that change what the tagger predicts (part of every input hash).
_HASHED_SETTINGS = (
    "ollama_model",
    "threshold",
    "genre_floor",
    "max_tags",
    "neighbours",
    "auto_weight",
    "keyphrases",
    "profile_min_examples",
    "profile_max_tags",
    "weights",
)


#: Withheld candidates recorded per item at most.
MAX_WITHHELD = 20


@dataclass
class ItemPrediction:
    """What the tagger predicts for one item."""

    media_id: int
    #: The tags to store, most confident first (before learned rules act).
    tags: list[TagPrediction]
    #: Every candidate with its scores, kept or not.
    candidates: list[TagPrediction]
    input_hash: str
    text_hash: str
    vector: Any
    notes: list[str] = field(default_factory=list)
    #: Per source, its evidence (for benchmarks and explanations).
    sources: dict[str, SourceResult] = field(default_factory=dict)
    #: Candidates over the threshold that a learned cut-off held back (at most
    #: ``MAX_WITHHELD``, the most confident): the user's next full review judges them.
    withheld: list[TagPrediction] = field(default_factory=list)


def tagging_fingerprint(settings: Settings, vocabulary: Vocabulary) -> dict[str, Any]:
    """The part of every input hash that is not the item's own text."""
    config = settings.tagging.model_dump(mode="json")
    return {
        "model": get_provider(settings).model_id,
        "vocabulary": vocabulary.digest,
        "settings": {name: config[name] for name in _HASHED_SETTINGS},
    }


def hash_inputs(settings: Settings, engine: Engine, items: Sequence[TagInput]) -> dict[int, str]:
    """The input hash of each item (no model is loaded), with the library's tuning in use."""
    settings = tuned_settings(settings, engine)
    fingerprint = tagging_fingerprint(settings, load_vocabulary(settings.tagging))
    model_id = fingerprint["model"]
    return {item.media_id: input_hash(item, model_id, fingerprint) for item in items}


def predict_tags(
    settings: Settings, engine: Engine, items: Sequence[TagInput]
) -> dict[int, ItemPrediction]:
    """Predict tags for items that have words (the others are left out).

    Raises ``Unavailable`` when the model, the vector store or a configured
    Ollama cannot be used, ``InvalidInput``/``NotFound`` for a bad vocabulary file.
    """
    import numpy as np

    # The weights, threshold and genre floor learned on the library, when in use.
    settings = tuned_settings(settings, engine)
    config = settings.tagging
    weights = config.weights
    vocabulary = load_vocabulary(config)
    fingerprint = tagging_fingerprint(settings, vocabulary)
    model_id = fingerprint["model"]
    usable = [item for item in items if item.has_words]
    if not usable:
        return {}
    vectors = input_vectors(settings, engine, usable)
    matrix = np.stack([vectors[item.media_id] for item in usable]).astype(np.float32)
    ids = [item.media_id for item in usable]

    cutoffs = learned_cutoffs(config, engine)
    per_source: dict[str, dict[int, SourceResult]] = {}
    notes: dict[int, list[str]] = {media_id: [] for media_id in ids}
    if weights.zero_shot > 0:
        per_source["zero_shot"] = zero_shot(settings, vocabulary, matrix, ids)
    if weights.profiles > 0:
        per_source["profiles"] = profiles(settings, engine, usable, matrix)
    if weights.tuned > 0:
        per_source["tuned"] = tuned(settings, engine, usable)
    if weights.neighbours > 0:
        per_source["neighbours"], note = neighbours(settings, engine, vocabulary, ids, matrix)
        if note:
            for media_id in ids:
                notes[media_id].append(note)
    # Keyphrases are most of the tagging time; when the user's reviews say keyword
    # tags are not wanted, they are not worth computing for the rest alone.
    if weights.keyphrases > 0 and config.keyphrases > 0 and cutoffs.proposes("keyword"):
        per_source["keyphrases"] = keyphrases(settings, vocabulary, usable, matrix)
    if config.ollama_model and weights.llm > 0:
        per_source["llm"], unread = llm_tags(config, vocabulary, usable)
        for media_id, note in unread.items():
            notes[media_id].append(note)

    raised = cutoffs.notes(config.threshold)
    predictions = {}
    for item in usable:
        results = {name: found[item.media_id] for name, found in per_source.items()}
        settled = {tag.norm for tag in item.tags if tag.source != "auto"}
        kept, candidates = combine(
            results,
            weights,
            threshold=config.threshold,
            max_tags=config.max_tags,
            exclude=settled | item.rejected,
            # An item that has a genre of its own needs none kept by the floor.
            genre_floor=0.0 if _has_genre(item, vocabulary) else config.genre_floor,
            cutoffs=cutoffs,
        )
        shown = {p.norm for p in kept} | settled | item.rejected
        withheld = [
            p
            for p in candidates
            if p.norm not in shown
            and config.threshold <= p.confidence < cutoffs.level(p.norm, p.kind)
        ][:MAX_WITHHELD]
        predictions[item.media_id] = ItemPrediction(
            media_id=item.media_id,
            tags=kept,
            candidates=candidates,
            withheld=withheld,
            input_hash=input_hash(item, model_id, fingerprint),
            text_hash=item.text_hash(model_id),
            vector=vectors[item.media_id],
            notes=notes[item.media_id] + raised,
            sources=results,
        )
    return predictions


def _has_genre(item: TagInput, vocabulary: Vocabulary) -> bool:
    """Whether the item carries a genre the user or a rule gave it."""
    for tag in item.tags:
        if tag.source == "auto":
            continue
        entry = vocabulary.get(tag.norm)
        if tag.kind == "genre" or (entry is not None and entry.kind == "genre"):
            return True
    return False
