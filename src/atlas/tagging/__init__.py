"""Automatic tagging: zero-shot, keyphrases, neighbours, learned profiles, rules, an LLM.

The tagger (:func:`predict_tags`) combines the evidence of its sources
(:mod:`atlas.tagging.sources`) into one confidence per tag
(:mod:`atlas.tagging.combine`); :func:`store_prediction` stores it after the
learned rules acted, in one transaction. The ``tag`` task (the chain's stage
between ``transcribe`` and ``embed``) and :func:`retag_media` (``media-tags
retag``) run it in batches; :func:`list_media_tags`, :func:`add_media_tags` and
:func:`remove_media_tags` serve ``media-tags list|add|remove``, and
:func:`train_media_tagger` (:mod:`atlas.tagging.tuning`) ``media-tags train``.
The tagger tunes its weights, threshold and genre floor on the library's
confirmed items (:mod:`atlas.tagging.selftune`, :mod:`atlas.tagging.selftune_store`;
``media-tags tuning``).
"""

from atlas.tagging.batch import TagItemResult, tag_batch
from atlas.tagging.combine import TagPrediction, combine
from atlas.tagging.edits import (
    MediaTags,
    TagEdit,
    add_media_tags,
    list_media_tags,
    remove_media_tags,
    resolve_target,
)
from atlas.tagging.inputs import TagInput, input_vectors, load_inputs
from atlas.tagging.retag import RetagItem, RetagReport, retag_media
from atlas.tagging.selftune import Learned, learn_tuning
from atlas.tagging.selftune_store import (
    LibraryTuning,
    current_tuning,
    tuned_settings,
    tuning_of_library,
)
from atlas.tagging.sources import SOURCES, Evidence, SourceResult
from atlas.tagging.store import StoredTags, store_prediction
from atlas.tagging.tagger import ItemPrediction, predict_tags
from atlas.tagging.tuning import (
    TrainReport,
    latest_tuned_model,
    train_media_tagger,
    train_tagger,
)
from atlas.tagging.vocabulary import Vocabulary, VocabularyEntry, load_vocabulary, parse_vocabulary

__all__ = [
    "SOURCES",
    "Evidence",
    "ItemPrediction",
    "Learned",
    "LibraryTuning",
    "MediaTags",
    "RetagItem",
    "RetagReport",
    "SourceResult",
    "StoredTags",
    "TagEdit",
    "TagInput",
    "TagItemResult",
    "TagPrediction",
    "TrainReport",
    "Vocabulary",
    "VocabularyEntry",
    "add_media_tags",
    "combine",
    "current_tuning",
    "input_vectors",
    "latest_tuned_model",
    "learn_tuning",
    "list_media_tags",
    "load_inputs",
    "load_vocabulary",
    "parse_vocabulary",
    "predict_tags",
    "remove_media_tags",
    "resolve_target",
    "retag_media",
    "store_prediction",
    "tag_batch",
    "train_media_tagger",
    "train_tagger",
    "tuned_settings",
    "tuning_of_library",
]
