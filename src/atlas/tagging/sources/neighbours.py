"""Tags propagated from the nearest already-tagged items of the library.

The item's text vector is matched against the library's embeddings
(:func:`atlas.embeddings.nearest_media`, the ``tagging.neighbours`` nearest, the
item itself excluded). Among them, the items that carry tags vote, each with
its cosine similarity as weight: a confirmed tag (source ``user`` or ``rule``)
counts fully, an automatic one ``tagging.auto_weight`` times its confidence.
A tag's score is its share of the votes of the neighbours that carry tags of
its kind (so items tagged only with keywords do not vote on genres), with one
vote of doubt added (``VOTE_PRIOR``: a confirmed, identical item's worth), so
that a lone, distant or automatically tagged neighbour cannot pass its tags on
by itself; without it, one keyphrase would spread through a young library.

The source judges the tags its voters carry and the vocabulary tags of the
kinds they carry. With nothing embedded yet it judges nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from atlas.config import Settings
from atlas.db import database_errors
from atlas.embeddings import Neighbour, nearest_media
from atlas.errors import NotFound
from atlas.media.tags import Tag, normalise_tag, tags_by_media
from atlas.tagging.inputs import chunked
from atlas.tagging.sources import Evidence, SourceResult
from atlas.tagging.vocabulary import Vocabulary

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = ["VOTE_PRIOR", "neighbours", "vote"]

VOTE_PRIOR = 1.0


@dataclass
class _Vote:
    tag: str
    kind: str
    weight: float = 0.0
    carriers: int = 0
    confirmed: int = 0


def neighbours(
    settings: Settings,
    engine: Engine,
    vocabulary: Vocabulary,
    media_ids: Sequence[int],
    vectors: Vectors,
) -> tuple[dict[int, SourceResult], str | None]:
    """Neighbour evidence per item, and a note when the source could not be used."""
    config = settings.tagging
    found: dict[int, list[Neighbour]] = {}
    for row, media_id in enumerate(media_ids):
        try:
            found[media_id] = nearest_media(
                settings, engine, vectors[row], top=config.neighbours, exclude=[media_id]
            )
        except NotFound:
            empty = {media_id: SourceResult("neighbours") for media_id in media_ids}
            return empty, "nothing is embedded yet, so no neighbours could vote"
    ids = sorted({n.media_id for near in found.values() for n in near})
    tags: dict[int, list[Tag]] = {}
    with database_errors(engine), engine.connect() as connection:
        for part in chunked(ids):
            tags.update(tags_by_media(connection, list(part)))
    return {
        media_id: vote(config.auto_weight, vocabulary, near, tags)
        for media_id, near in found.items()
    }, None


def vote(
    auto_weight: float,
    vocabulary: Vocabulary,
    near: Sequence[Neighbour],
    tags: dict[int, list[Tag]],
) -> SourceResult:
    result = SourceResult("neighbours")
    votes: dict[str, _Vote] = {}
    # Per kind: the votes of every neighbour that carries tags of that kind.
    totals: dict[str, float] = {}
    voters: dict[str, int] = {}
    for neighbour in near:
        weight = max(0.0, neighbour.similarity)
        carried = tags.get(neighbour.media_id) or []
        if weight <= 0 or not carried:
            continue
        for kind in {tag.kind for tag in carried}:
            confirmed = any(t.kind == kind and t.source != "auto" for t in carried)
            totals[kind] = totals.get(kind, 0.0) + weight * (1.0 if confirmed else auto_weight)
            voters[kind] = voters.get(kind, 0) + 1
        for tag in carried:
            norm = normalise_tag(tag.tag)
            vote = votes.setdefault(norm, _Vote(tag.tag, tag.kind))
            confirmed = tag.source != "auto"
            vote.weight += weight * (1.0 if confirmed else auto_weight * tag.confidence)
            vote.carriers += 1
            vote.confirmed += confirmed
    result.judged.update(e.norm for e in vocabulary.entries if e.kind in totals)
    result.judged.update(votes)
    for norm, vote in votes.items():
        entry = vocabulary.get(norm)
        kind = entry.kind if entry else vote.kind
        total = (totals.get(kind) or totals.get(vote.kind) or 0.0) + VOTE_PRIOR
        result.add(
            Evidence(
                tag=entry.name if entry else vote.tag,
                norm=norm,
                kind=kind,
                score=min(1.0, vote.weight / total),
                detail=(
                    f"{vote.carriers} of {voters.get(kind) or voters.get(vote.kind, 0)} nearest "
                    f"tagged items carry it ({vote.confirmed} confirmed)"
                ),
            )
        )
    return result
