"""Learned tag profiles: per-tag models trained on the library's confirmed tags.

Nearest-neighbour votes use a handful of items; a profile uses every item the
user tagged. For each confirmed tag (source ``user`` or ``rule``) carried by at
least ``tagging.profile_min_examples`` items (the ``tagging.profile_max_tags``
most used), a logistic regression learns the tag from the items' tagger-text
vectors and the TF-IDF of their words. Its examples: the items that carry the
tag (positive) and the other items with confirmed tags of the same kind, plus
the items the user removed it from (negative). The probability is the score.

Training costs seconds, so profiles are trained once per process and state of
the confirmed tags (count, newest id and time of confirmed tags and of
rejections): tagging a batch after a user edit retrains, tagging the next batch
does not. At most ``MAX_TRAINING_ITEMS`` items (the newest) are used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from atlas.caches import CACHES
from atlas.config import Settings
from atlas.db import database_errors
from atlas.db.tables import media_tag_rejections, media_tags
from atlas.embeddings import get_provider
from atlas.tagging.inputs import TagInput, input_vectors, load_texts
from atlas.tagging.sources import SourceResult, learned_evidence

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = [
    "MAX_TRAINING_ITEMS",
    "ProfileTag",
    "Profiles",
    "TagExamples",
    "confirmed_examples",
    "fit_profiles",
    "get_profiles",
    "profiles",
]

MAX_TRAINING_ITEMS = 20_000
_C = 4.0


@dataclass(frozen=True)
class ProfileTag:
    tag: str
    norm: str
    kind: str
    positives: int


class Profiles:
    """Trained tag models and the word features they share."""

    def __init__(self, tags: list[ProfileTag], vectorizer: Any, models: list[Any]) -> None:
        self.tags = tags
        self.vectorizer = vectorizer
        self.models = models

    def __len__(self) -> int:
        return len(self.tags)

    def predict(self, vectors: Vectors, texts: Sequence[str]) -> Any:
        """Probabilities, one row per item and one column per profiled tag."""
        import numpy as np

        features = _features(vectors, self.vectorizer.transform(list(texts)))
        columns = [model.predict_proba(features)[:, 1] for model in self.models]
        return np.stack(columns, axis=1) if columns else np.zeros((len(texts), 0))


def _features(vectors: Vectors, words: Any) -> Any:
    from scipy import sparse

    return sparse.hstack([sparse.csr_matrix(vectors), words]).tocsr()


def _fingerprint(engine: Engine) -> tuple[Any, ...]:
    with database_errors(engine), engine.connect() as connection:
        confirmed = connection.execute(
            select(
                func.count(), func.max(media_tags.c.id), func.max(media_tags.c.updated_at)
            ).where(media_tags.c.source != "auto")
        ).one()
        rejected = connection.execute(
            select(func.count(), func.max(media_tag_rejections.c.id))
        ).one()
    return (*confirmed, *rejected)


def get_profiles(settings: Settings, engine: Engine) -> Profiles | None:
    """The profiles of the library's confirmed tags (``None``: no tag has enough examples)."""
    config = settings.tagging
    if config.profile_max_tags == 0:
        return None
    key = (
        str(engine.url),
        get_provider(settings).model_id,
        config.profile_min_examples,
        config.profile_max_tags,
        _fingerprint(engine),
    )
    # Only the latest state is worth keeping: a new fingerprint replaces the older one.
    return CACHES.profiles.get(key, lambda: _train(settings, engine))


@dataclass(frozen=True)
class TagExamples:
    """What the library teaches about one confirmed tag: its examples and their labels."""

    tag: ProfileTag
    #: Media ids: the items that carry the tag, the other items with confirmed
    #: tags of its kind, and the items the user removed it from.
    examples: list[int]
    #: Per example, whether it carries the tag.
    labels: list[bool]


def confirmed_examples(
    settings: Settings, engine: Engine, *, limit: int = MAX_TRAINING_ITEMS
) -> list[TagExamples]:
    """The confirmed tags worth learning, most used first, over the newest ``limit`` items.

    A tag is worth learning once ``tagging.profile_min_examples`` items carry it
    and as many items of its kind do not (at most ``tagging.profile_max_tags`` tags).
    """
    config = settings.tagging
    with database_errors(engine), engine.connect() as connection:
        rows = connection.execute(
            select(
                media_tags.c.media_id, media_tags.c.tag, media_tags.c.tag_norm, media_tags.c.kind
            )
            .where(media_tags.c.source != "auto")
            .order_by(media_tags.c.media_id.desc())
        ).all()
        rejections = connection.execute(
            select(media_tag_rejections.c.media_id, media_tag_rejections.c.tag_norm)
        ).all()
    newest: list[int] = list(dict.fromkeys(row.media_id for row in rows))[:limit]
    keep = set(newest)
    carriers: dict[str, set[int]] = {}
    kinds: dict[str, Counter[str]] = {}
    spellings: dict[str, Counter[str]] = {}
    pools: dict[str, set[int]] = {}
    for row in rows:
        if row.media_id not in keep:
            continue
        carriers.setdefault(row.tag_norm, set()).add(row.media_id)
        kinds.setdefault(row.tag_norm, Counter())[row.kind] += 1
        spellings.setdefault(row.tag_norm, Counter())[row.tag] += 1
        pools.setdefault(row.kind, set()).add(row.media_id)
    refused: dict[str, set[int]] = {}
    for media_id, norm in rejections:
        refused.setdefault(norm, set()).add(media_id)

    ranked = sorted(
        (norm for norm, ids in carriers.items() if len(ids) >= config.profile_min_examples),
        key=lambda norm: (-len(carriers[norm]), norm),
    )[: config.profile_max_tags]
    found = []
    for norm in ranked:
        kind = kinds[norm].most_common(1)[0][0]
        examples = sorted(pools[kind] | refused.get(norm, set()))
        labels = [media_id in carriers[norm] for media_id in examples]
        if len(examples) - sum(labels) < config.profile_min_examples:
            continue  # a tag nearly every item carries tells nothing apart
        tag = ProfileTag(spellings[norm].most_common(1)[0][0], norm, kind, sum(labels))
        found.append(TagExamples(tag, examples, labels))
    return found


def _train(settings: Settings, engine: Engine) -> Profiles | None:
    plans = confirmed_examples(settings, engine)
    if not plans:
        return None
    needed = sorted({media_id for plan in plans for media_id in plan.examples})
    with database_errors(engine), engine.connect() as connection:
        texts: dict[int, TagInput] = load_texts(connection, needed, keep_sources=False)
    usable = [texts[media_id] for media_id in needed if media_id in texts]
    vectors = input_vectors(settings, engine, [item for item in usable if item.has_words])
    return fit_profiles(plans, {m: item.text for m, item in texts.items()}, vectors)


def fit_profiles(
    plans: Sequence[TagExamples], texts: dict[int, str], vectors: dict[int, Any]
) -> Profiles | None:
    """Train one profile per tag of ``plans`` on the items that have a text and a vector.

    ``None`` when no tag has two positive and one negative example among them.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    needed = sorted({media_id for plan in plans for media_id in plan.examples})
    usable = [m for m in needed if m in vectors and (texts.get(m) or "").strip()]
    if not usable:
        return None
    row_of = {media_id: index for index, media_id in enumerate(usable)}
    vectorizer = TfidfVectorizer(
        sublinear_tf=True, min_df=2, stop_words="english", max_features=50_000
    )
    try:
        words = vectorizer.fit_transform([texts[media_id] for media_id in usable])
    except ValueError:  # too few words in the whole training set
        return None
    features = _features(np.stack([vectors[media_id] for media_id in usable]), words)

    tags, models = [], []
    for plan in plans:
        pairs = [
            (row_of[m], y) for m, y in zip(plan.examples, plan.labels, strict=True) if m in row_of
        ]
        targets = np.array([y for _, y in pairs], dtype=int)
        if targets.sum() < 2 or targets.sum() == len(targets):
            continue
        model = LogisticRegression(C=_C, max_iter=1000)
        model.fit(features[[index for index, _ in pairs]], targets)
        tags.append(ProfileTag(plan.tag.tag, plan.tag.norm, plan.tag.kind, int(targets.sum())))
        models.append(model)
    return Profiles(tags, vectorizer, models) if tags else None


def profiles(
    settings: Settings,
    engine: Engine,
    items: Sequence[TagInput],
    vectors: Vectors,
) -> dict[int, SourceResult]:
    """Profile evidence for the items (rows of ``vectors`` in the same order)."""
    trained = get_profiles(settings, engine)
    if trained is None or not items:
        return {item.media_id: SourceResult("profiles") for item in items}
    return learned_evidence(
        "profiles",
        [item.media_id for item in items],
        trained.tags,
        trained.predict(vectors, [item.text for item in items]),
        lambda tag, score: f"learned profile {score:.2f} (from {tag.positives} items tagged so)",
    )
