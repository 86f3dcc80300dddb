"""Zero-shot tags: the item's text against the vocabulary's labels, by embedding similarity.

Each vocabulary entry is embedded once per model as ``Name: description``. An
item's cosine similarity to a label means little on its own (some labels sit
closer to every text than others, and short texts are close to everything), so
the score is the similarity *above the item's mean over the labels of the same
kind*, scaled: ``clip((sim - mean) / 0.15, 0, 1)``; and since a label that is
merely the least far of many says little, it is damped below an absolute
similarity of 0.3: ``* clip((sim - 0.1) / 0.2, 0, 1)``. The zero-shot source
judges every vocabulary tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from atlas.caches import CACHES
from atlas.config import Settings
from atlas.embeddings import embed_texts, get_provider
from atlas.tagging.sources import Evidence, SourceResult
from atlas.tagging.vocabulary import Vocabulary

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = ["ABSOLUTE_SPAN", "FLOOR", "SPAN", "label_vectors", "zero_shot"]

#: The similarity above the mean that counts as full evidence.
SPAN = 0.15
#: Below FLOOR + ABSOLUTE_SPAN absolute similarity the evidence is damped, to 0 at FLOOR.
FLOOR = 0.1
ABSOLUTE_SPAN = 0.2


def label_vectors(settings: Settings, vocabulary: Vocabulary) -> Vectors:
    """The vocabulary's label vectors with the configured model (cached per process)."""
    key = (get_provider(settings).model_id, vocabulary.digest)
    labels = [entry.label for entry in vocabulary.entries]
    vectors: Vectors = CACHES.label_vectors.get(key, lambda: embed_texts(settings, labels))
    return vectors


def zero_shot(
    settings: Settings, vocabulary: Vocabulary, vectors: Vectors, media_ids: Sequence[int]
) -> dict[int, SourceResult]:
    """Zero-shot evidence for the items whose text vectors are the rows of ``vectors``."""
    import numpy as np

    labels = label_vectors(settings, vocabulary)
    similarity = vectors @ labels.T
    centred = np.zeros_like(similarity)
    kinds = np.array([entry.kind for entry in vocabulary.entries])
    for kind in set(kinds.tolist()):
        columns = kinds == kind
        block = similarity[:, columns]
        centred[:, columns] = block - block.mean(axis=1, keepdims=True)
    scores = np.clip(centred / SPAN, 0.0, 1.0) * np.clip(
        (similarity - FLOOR) / ABSOLUTE_SPAN, 0.0, 1.0
    )
    judged = {entry.norm for entry in vocabulary.entries}
    results = {}
    for row, media_id in enumerate(media_ids):
        result = SourceResult("zero_shot", judged=set(judged))
        for column in np.nonzero(scores[row] > 0)[0]:
            entry = vocabulary.entries[int(column)]
            result.add(
                Evidence(
                    tag=entry.name,
                    norm=entry.norm,
                    kind=entry.kind,
                    score=float(scores[row, column]),
                    detail=f"zero-shot {similarity[row, column]:.2f} vs label '{entry.name}'",
                )
            )
        results[media_id] = result
    return results
