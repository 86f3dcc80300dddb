"""Mining's counting shortcuts against straightforward references on random data."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
from scipy import sparse

from atlas.feedback.sparse import Additions, Incidence
from atlas.media.words import stored_words, text_words, words_key, words_of

_WORDS = ["heist", "bank", "x", "d-day", "o'neil", "café", "naïve", "a", "bank"]


def _random_text(rng: random.Random, spaces: list[str]) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(0, 7))]
    text = ""
    for index, word in enumerate(words):
        text += word + (rng.choice(spaces) if index < len(words) - 1 else "")
    return rng.choice(["", " "]) + text + rng.choice(["", " ", "  "])


def _cells(incidence: Incidence) -> set[tuple[int, str]]:
    rows, columns = incidence.matrix.nonzero()
    return {(int(r), incidence.names[c]) for r, c in zip(rows, columns, strict=True)}


@pytest.mark.parametrize(
    "spaces",
    [[" "], [" ", "  "], [" ", "\t", "\n"], [" ", "\xa0", "\u2003"]],
    ids=["plain", "doubled", "ascii-whitespace", "unicode-whitespace"],
)
def test_words_counted_in_one_split_are_the_words_of_each_text(spaces):
    rng = random.Random(len(spaces) * 7 + sum(map(len, spaces)))
    for _ in range(300):
        texts = [_random_text(rng, spaces) for _ in range(rng.randrange(0, 8))]
        fast = Incidence.of_words(texts)
        reference = Incidence.of([text.split() for text in texts])
        assert _cells(fast) == _cells(reference)
        assert fast.matrix.shape == reference.matrix.shape
        assert sorted(fast.names) == sorted(reference.names)
        assert fast.matrix.has_canonical_format
        assert set(fast.matrix.data.tolist()) <= {1.0}  # a repeated word counts once
        assert fast.counts() == reference.counts()


def test_words_key_is_the_hash_of_its_parts_one_after_another():
    rng = random.Random(3)
    pieces = ["A heist", "naïve café", "", "\ud800 lone", "x" * 25_000, None]
    for _ in range(200):
        texts = [rng.choice(pieces) for _ in range(rng.randrange(0, 4))]
        digest = hashlib.blake2b(b"1", digest_size=16)
        for text in texts:
            data = text[:20_000].encode("utf-8", "surrogatepass") if text else b""
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        assert words_key(*texts) == digest.hexdigest()


def test_stored_words_as_text_are_the_words_readers_use():
    title, description = "The Bank Heist", "A daring heist at the national bank in Paris."
    key = words_key(title, description, None)
    stored = " ".join(sorted(text_words(title, description)))
    for given_stored, given_key in [(stored, key), (stored, "stale"), (None, None), ("x", key)]:
        text = stored_words(given_stored, given_key, title, description, None)
        assert frozenset(text.split()) == words_of(
            given_stored, given_key, title, description, None
        )


def _reference_measures(added, shown, held, weights, may_qualify):
    """Every (tag, feature) pair counted item by item, dense."""
    added, shown, held = (m.toarray().astype(bool) for m in (added, shown, held))
    found = {}
    for b in range(added.shape[1]):
        for f in range(held.shape[1]):
            hits = added[:, b] & held[:, f]
            if not hits.any():
                continue
            feature_items = int(held[:, f].sum())
            if not may_qualify(np.array([b]), np.array([feature_items]), np.array([hits.sum()]))[0]:
                continue
            where = held[:, f] & ~shown[:, b]
            found[(b, f)] = (
                int(hits.sum()),
                float(weights[hits].sum()),
                int(where.sum()),
                float(weights[where].sum()),
            )
    return found


def test_additions_measured_on_the_chosen_columns_match_item_by_item_counts():
    rng = np.random.default_rng(11)
    for trial in range(40):
        items, tags, features = rng.integers(1, 60), rng.integers(1, 8), rng.integers(1, 12)
        added = sparse.csr_matrix(rng.random((items, tags)) < 0.3, dtype=np.float64)
        shown = sparse.csr_matrix(rng.random((items, tags)) < 0.2, dtype=np.float64)
        held = sparse.csr_matrix(rng.random((items, features)) < 0.4, dtype=np.float64)
        weights = rng.random(items)
        threshold, parity = trial % 4, trial % 2

        def may_qualify(b, feature_items, hits, threshold=threshold, parity=parity):
            return (np.asarray(hits) >= threshold) & (np.asarray(b) % 2 == parity)

        tag_names = [f"t{i}" for i in range(tags)]
        feature_names = [f"f{i}" for i in range(features)]
        additions = Additions(
            np.arange(items) + 100,
            weights,
            Incidence(added, tag_names),
            Incidence(shown, tag_names),
            Incidence(held, feature_names),
        )
        measured = additions.measure(may_qualify)
        expected = _reference_measures(added, shown, held, weights, may_qualify)
        assert set(measured) == {("add", tag_names[b], feature_names[f]) for b, f in expected}
        for (b, f), (hit_n, hit_w, held_n, held_w) in expected.items():
            found = measured[("add", tag_names[b], feature_names[f])]
            assert (found.hit_n, found.held_n) == (hit_n, held_n)
            assert found.hit_w == pytest.approx(hit_w, rel=1e-12, abs=1e-12)
            assert found.held_w == pytest.approx(held_w, rel=1e-12, abs=1e-12)
