"""Similar media and text search: vector, lexical (BM25) and hybrid (RRF)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from sqlalchemy import select, update

from atlas.db.tables import media
from atlas.embeddings import (
    embed_texts,
    get_provider,
    media_vectors,
    nearest_media,
    search_media,
    similar_media,
)
from atlas.embeddings.fusion import SHIPPED, FusionWeights, fuse, tag_rarity
from atlas.embeddings.lexical import LexicalIndex, tokenize
from atlas.embeddings.lexical_sync import get_lexical_index
from atlas.embeddings.repository import load_tags
from atlas.embeddings.similar import (
    GENRE_WEIGHT,
    TAG_WEIGHT,
    Facts,
    SimilarWeights,
    facts_of,
    genre_votes,
    pool_facts,
    rank_neighbours,
    similarity,
)
from atlas.errors import InvalidInput, NotFound
from atlas.media.tags import Tag, upsert_tags
from conftest import THEMES

THEME_OF = {title: theme for theme, titles in THEMES.items() for title in titles}


def _titles(result):
    return [hit.title for hit in result.hits]


# --- lexical building blocks (no model) -------------------------------------------------


def test_tokenize_drops_stop_words_and_folds_plurals():
    assert tokenize("The Robots of the Cities, and a Fox's boxes!") == [
        "robot",
        "city",
        "fox",
        "box",
    ]
    assert tokenize("glass bus analysis") == ["glass", "bus", "analysis"]


def test_bm25_ranks_the_rarer_and_more_frequent_term_higher():
    index = LexicalIndex(
        [1, 2, 3],
        [
            tokenize("space station crew"),
            tokenize("space space space opera"),
            tokenize("bread and butter"),
        ],
        ["video", "audio", "video"],
        [frozenset({"drama"}), frozenset(), frozenset()],
    )
    hits = index.search("space", 10)
    assert [h.media_id for h in hits] == [2, 1]
    assert [h.media_id for h in index.search("crew space", 10)] == [1, 2]
    assert index.search("unknownword", 10) == []
    assert [h.media_id for h in index.search("space", 10, media_type="video")] == [1]
    assert [h.media_id for h in index.search("space", 10, genre="Drama")] == [1]


def test_lexical_search_needs_no_embeddings_and_explains_where_words_matched(atlas, themed_library):
    result = search_media(atlas.settings, atlas.engine, "detective murder", mode="lexical")
    assert result.hits[0].title in ("Rain on Calloway Street", "Glass Alibi")
    assert result.hits[0].similarity == pytest.approx(1.0)
    assert {THEME_OF[t] for t in _titles(result)} == {"crime"}
    assert "detective (tags, description)" in result.hits[0].why
    assert result.model is None


def test_lexical_index_is_rebuilt_when_the_library_changes(atlas, themed_library):
    before = get_lexical_index(atlas.engine)
    assert get_lexical_index(atlas.engine) is before
    with atlas.engine.begin() as connection:
        connection.execute(
            update(media)
            .where(media.c.id == themed_library["Sunday Dumplings"])
            .values(description="Dumplings folded by a submarine captain.", updated_at=_later())
        )
    result = search_media(atlas.settings, atlas.engine, "submarine", mode="lexical")
    assert _titles(result) == ["Sunday Dumplings"]


def _later():
    from datetime import timedelta

    from atlas.db import utcnow

    return utcnow() + timedelta(seconds=5)


# --- with vectors (real model) ---------------------------------------------------------


@pytest.mark.slow
def test_similar_media_ranks_items_of_the_same_theme_first(atlas, embedded_library):
    agreeing = 0
    for title, media_id in embedded_library.items():
        result = similar_media(atlas.settings, atlas.engine, media_id, top=3)
        assert title not in _titles(result) and len(result.hits) == 3
        themes = [THEME_OF[t] for t in _titles(result)]
        assert themes[0] == THEME_OF[title], title
        agreeing += themes.count(THEME_OF[title])
        assert all(-1.0 <= hit.similarity <= 1.0 for hit in result.hits)
    assert agreeing >= 0.9 * 3 * len(embedded_library)


@pytest.mark.slow
def test_similar_media_explains_shared_genres_tags_and_meaning(atlas, embedded_library):
    result = similar_media(atlas.settings, atlas.engine, embedded_library["Orbit of Silence"])
    rows = {hit.title: hit for hit in result.hits}
    assert re.fullmatch(
        r"same genre: Science Fiction; shares tags: space; close in meaning \(0\.\d\d\)",
        rows["Red Planet Harvest"].why,
    )
    assert re.fullmatch(r"close in meaning \(0\.\d\d\)", rows["The Vault Job"].why)
    assert len(result.hits) == 10
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    # The score is the cosine plus the shared confirmed genres and tags.
    red = rows["Red Planet Harvest"]
    expected = red.similarity + GENRE_WEIGHT * 1 / 1 + TAG_WEIGHT * 1 / math.sqrt(2 * 2)
    assert red.score == pytest.approx(expected, abs=1e-4)
    assert rows["The Vault Job"].score == pytest.approx(rows["The Vault Job"].similarity)


@pytest.mark.slow
def test_similar_media_counts_confirmed_genres_only(atlas, embedded_library):
    source = embedded_library["Glass Alibi"]  # Crime, Thriller
    kitchen = embedded_library["Kitchen Chemistry"]

    def kitchen_hit():
        result = similar_media(atlas.settings, atlas.engine, source, top=11)
        return next(hit for hit in result.hits if hit.media_id == kitchen)

    before = kitchen_hit()
    with atlas.engine.begin() as connection:
        upsert_tags(
            connection, kitchen, [Tag("Thriller", kind="genre", source="auto", confidence=0.9)]
        )
    guessed = kitchen_hit()
    assert guessed.score == pytest.approx(before.score)  # an automatic guess is no evidence
    assert "same genre" not in guessed.why
    with atlas.engine.begin() as connection:
        upsert_tags(connection, kitchen, [Tag("Thriller", kind="genre", source="user")])
    confirmed = kitchen_hit()
    assert confirmed.score == pytest.approx(before.score + GENRE_WEIGHT * 1 / 4, abs=1e-4)
    assert confirmed.why.startswith("same genre: Thriller;")
    assert confirmed.similarity == pytest.approx(before.similarity, abs=1e-5)


def test_similarity_is_cosine_plus_overlap_of_confirmed_facts():
    source = facts_of("Drama", [Tag("War", kind="genre"), Tag("prison"), Tag("escape")])
    assert source == Facts(frozenset({"drama", "war"}), frozenset({"prison", "escape"}))
    other = facts_of(None, [Tag("War", kind="genre"), Tag("escape"), Tag("x", source="auto")])
    assert similarity(0.5, source, other) == pytest.approx(
        0.5 + GENRE_WEIGHT * 1 / 2 + TAG_WEIGHT * 1 / math.sqrt(2 * 1)
    )
    assert similarity(0.5, source, facts_of(None, [])) == 0.5


@pytest.mark.slow
def test_similar_media_respects_top_threshold_type_and_genre(atlas, embedded_library):
    source = embedded_library["Orbit of Silence"]
    assert len(similar_media(atlas.settings, atlas.engine, source, top=2).hits) == 2
    strict = similar_media(atlas.settings, atlas.engine, source, threshold=0.5)
    assert strict.hits and all(hit.similarity >= 0.5 for hit in strict.hits)
    assert len(strict.hits) < 11
    audio = similar_media(atlas.settings, atlas.engine, source, media_type="audio")
    assert sorted(_titles(audio)) == [
        "Cold Case Conversations",
        "Kitchen Chemistry",
        "Rockets and Dreams",
    ]
    crime = similar_media(atlas.settings, atlas.engine, source, genre="crime")
    assert {THEME_OF[t] for t in _titles(crime)} == {"crime"} and len(crime.hits) == 4


@pytest.mark.slow
def test_text_query_modes_all_find_the_theme(atlas, embedded_library):
    for mode in ("vector", "lexical", "hybrid"):
        result = search_media(
            atlas.settings, atlas.engine, "baking bread in the kitchen", mode=mode, top=3
        )
        assert result.mode == mode
        assert {THEME_OF[t] for t in _titles(result)} == {"cooking"}, mode


@pytest.mark.slow
def test_hybrid_weighs_words_by_query_length_and_explains(atlas, embedded_library):
    short = search_media(atlas.settings, atlas.engine, "detective robbery", top=12)
    assert short.fusion["words_weight"] == SHIPPED.words_short
    assert short.fusion["query_words"] == 2 and short.fusion["feedback_items"] == 5
    long = search_media(
        atlas.settings, atlas.engine, "a tired investigator who never gives up on a case", top=12
    )
    assert long.fusion["words_weight"] == SHIPPED.words_long
    assert {THEME_OF[t] for t in _titles(long)[:4]} == {"crime"}
    top = short.hits[0]
    assert top.title == "Cold Case Conversations"
    assert "words:" in top.why and "close in meaning" in top.why
    vector = search_media(atlas.settings, atlas.engine, "detective robbery", mode="vector", top=12)
    cosines = {h.media_id: h.similarity for h in vector.hits}
    for hit in short.hits:  # similarity stays the plain cosine to the query
        assert hit.similarity == pytest.approx(cosines[hit.media_id], abs=1e-4)
    scores = [hit.score for hit in short.hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_hybrid_lifts_items_filed_under_the_best_matches_rare_tags(atlas, embedded_library):
    query = "astronauts far from home"
    meaning_only = FusionWeights(words_short=0.0, words_long=0.0, tags=0.0)
    with_tags = FusionWeights(words_short=0.0, words_long=0.0)

    def rank(weights):
        result = search_media(atlas.settings, atlas.engine, query, top=12, weights=weights)
        return _titles(result).index("Sunday Dumplings"), result

    untagged, _ = rank(with_tags)
    with atlas.engine.begin() as connection:  # the user files it under the space items' tags
        upsert_tags(
            connection, embedded_library["Sunday Dumplings"], [Tag("space"), Tag("astronaut")]
        )
    plain, _ = rank(meaning_only)
    lifted, result = rank(with_tags)
    assert "space" in result.fusion["library_tags"]
    assert lifted < plain and lifted < untagged
    hit = result.hits[lifted]
    assert "tagged like the best matches: " in hit.why and "space" in hit.why


def test_fuse_moves_the_query_to_its_best_matches_and_adds_words_and_tags():
    vectors = {
        1: np.array([1.0, 0.0, 0.0], dtype=np.float32),
        2: np.array([0.0, 1.0, 0.0], dtype=np.float32),
        3: np.array([0.6, 0.8, 0.0], dtype=np.float32),
    }
    query = np.array([0.8, 0.6, 0.0], dtype=np.float32)
    tags = {1: frozenset({"rare"}), 2: frozenset(), 3: frozenset({"rare", "common"})}
    rarity = tag_rarity({"rare": 2, "common": 3}, 3)
    weights = FusionWeights(feedback=1.0, depth=1, words_short=0.5, tags=0.2)
    ranked, report = fuse(query, [1, 3, 2], vectors, {2: 4.0, 3: 2.0}, tags, rarity, 1, weights)
    moved = query + vectors[1]
    moved /= np.linalg.norm(moved)
    expected = {
        1: float(vectors[1] @ moved) + 0.2,
        2: float(vectors[2] @ moved) + 0.5,
        3: float(vectors[3] @ moved) + 0.5 * 0.5 + 0.2,
    }
    assert [m for m, _ in ranked] == sorted(expected, key=lambda m: -expected[m])
    assert dict(ranked) == pytest.approx(expected)
    assert report["words_weight"] == 0.5 and report["library_tags"] == ["rare"]
    # A long query: words count less.
    ranked, report = fuse(query, [1, 3, 2], vectors, {2: 4.0}, tags, rarity, 7, weights)
    assert report["words_weight"] == weights.words_long


@pytest.mark.slow
def test_cluster_option_groups_results_and_names_the_groups(atlas, embedded_library):
    result = search_media(
        atlas.settings, atlas.engine, "stories", mode="vector", top=12, cluster=True
    )
    assert result.groups is not None and len(result.groups) >= 2
    grouped = [m for group in result.groups for m in group.media_ids]
    assert sorted(grouped) == sorted(h.media_id for h in result.hits)
    by_id = {hit.media_id: hit.title for hit in result.hits}
    for group in result.groups:
        themes = {THEME_OF[by_id[m]] for m in group.media_ids}
        assert len(themes) == 1, group
        assert group.name and group.tags


@pytest.mark.slow
def test_public_building_blocks_for_other_services(atlas, embedded_library):
    [vector] = embed_texts(atlas.settings, ["rockets carrying astronauts into orbit"])
    assert vector.shape == (384,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    found = nearest_media(
        atlas.settings,
        atlas.engine,
        vector,
        top=2,
        exclude=[embedded_library["Rockets and Dreams"]],
    )
    assert len(found) == 2
    assert all(THEME_OF[_title(embedded_library, n.media_id)] == "space" for n in found)
    stored = media_vectors(atlas.settings, atlas.engine, [embedded_library["Glass Alibi"], 999])
    assert list(stored) == [embedded_library["Glass Alibi"]]
    assert get_provider(atlas.settings).dimension == 384


def _title(library, media_id):
    return next(title for title, mid in library.items() if mid == media_id)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top": 0}, "`top` must be at least 1"),
        ({"top": -3}, "`top` must be at least 1"),
        ({"threshold": 1.5}, "`threshold` must be between 0 and 1"),
        ({"threshold": -0.1}, "`threshold` must be between 0 and 1"),
        ({"media_type": "hologram"}, "unknown media type 'hologram'"),
        ({"mode": "fuzzy"}, "unknown mode 'fuzzy'"),
    ],
)
def test_bad_search_options_are_refused(atlas, options, message):
    with pytest.raises(InvalidInput, match=message):
        search_media(atlas.settings, atlas.engine, "space", **options)


def test_empty_query_is_refused(atlas):
    with pytest.raises(InvalidInput, match="the query is empty"):
        search_media(atlas.settings, atlas.engine, "   ")


def test_unknown_media_is_not_found(atlas):
    with pytest.raises(NotFound, match="no media with id 4242"):
        similar_media(atlas.settings, atlas.engine, 4242)


def test_media_not_embedded_yet_says_how_to_embed_it(atlas, themed_library):
    media_id = themed_library["Glass Alibi"]
    with pytest.raises(NotFound, match=f"media {media_id} is not embedded yet"):
        similar_media(atlas.settings, atlas.engine, media_id)
    with pytest.raises(NotFound, match="nothing is embedded with .* yet"):
        search_media(atlas.settings, atlas.engine, "space", mode="vector")


def test_transcripts_are_searched_and_part_of_the_document(atlas, themed_library):
    from atlas.db import utcnow
    from atlas.db.tables import transcripts
    from atlas.embeddings.repository import load_documents

    media_id = themed_library["Rockets and Dreams"]
    with atlas.engine.begin() as connection:
        connection.execute(
            transcripts.insert().values(
                media_id=media_id,
                text="Today we talk about the thermodynamics of liquid hydrogen engines.",
                segments=[],
                source="whisper",
                created_at=utcnow(),
            )
        )
    result = search_media(atlas.settings, atlas.engine, "hydrogen engines", mode="lexical")
    assert _titles(result) == ["Rockets and Dreams"]
    assert result.hits[0].why == "words: engine (transcript); hydrogen (transcript)"
    with atlas.engine.connect() as connection:
        document = load_documents(connection, [media_id])[media_id]
    assert document.text.splitlines()[-1].startswith("Transcript: Today we talk about")


def test_an_item_without_confirmed_genres_borrows_its_neighbours_votes():
    drama = facts_of(None, [Tag("Drama", kind="genre")])
    war = facts_of(None, [Tag("War", kind="genre"), Tag("Drama", kind="genre")])
    unknown = facts_of(None, [Tag("Comedy", kind="genre", source="auto")])
    assert unknown.genres == frozenset()
    votes = genre_votes([drama, unknown, war], voters=2)
    assert votes == pytest.approx({"drama": 1.0, "war": 0.5})
    candidates = [(1, 0.50, drama), (2, 0.52, unknown), (3, 0.45, war)]
    weights = SimilarWeights(guess=0.2, tags=0.0)
    ranked, used = rank_neighbours(unknown, candidates, weights)
    assert used == votes
    expected = {1: 0.50 + 0.2 * 1.0, 2: 0.52, 3: 0.45 + 0.2 * (1.0 + 0.5) / 2}
    assert [m for _, m in ranked] == [1, 3, 2]  # the war drama overtakes the unknown item
    assert dict((m, s) for s, m in ranked) == pytest.approx(expected)
    # An item with confirmed genres uses its own, never the votes.
    ranked, used = rank_neighbours(drama, candidates, weights)
    assert used == {}


def test_the_pool_read_gives_each_item_its_confirmed_facts_as_facts_of_does(atlas, themed_library):
    ids = list(themed_library.values())
    first, second = ids[0], ids[1]
    with atlas.engine.begin() as connection:
        upsert_tags(
            connection,
            first,
            [
                Tag("Film Noir", kind="genre"),
                Tag("Heist", kind="genre", source="auto", confidence=0.8),
                Tag("rain", source="auto", confidence=0.7),
                Tag("Harbour"),
            ],
        )
        upsert_tags(connection, second, [Tag("Quiet", kind="topic", source="rule")])
        genres = dict(connection.execute(select(media.c.id, media.c.genre)).all())
        tags = load_tags(connection, ids)
        expected = {m: facts_of(genres[m], tags[m]) for m in ids}
        with_tags, rows = pool_facts(connection, [*ids, 987654], with_tags=True)
        genres_only, _ = pool_facts(connection, ids, with_tags=False)
    assert with_tags == expected  # an unknown id (a stale vector) is left out
    assert genres_only == {m: Facts(f.genres, frozenset()) for m, f in expected.items()}
    assert "film noir" in with_tags[first].genres and "heist" not in with_tags[first].genres
    assert with_tags[first].tags >= {"harbour"} and "rain" not in with_tags[first].tags
    assert with_tags[second].tags >= {"quiet"}
    assert rows[first]["title"] == next(t for t, m in themed_library.items() if m == first)
