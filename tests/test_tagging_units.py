"""The tagger's parts that need no model: vocabulary, combination, phrases, neighbour votes."""

from __future__ import annotations

import pytest

from atlas.config import TaggingSettings, TagSourceWeights
from atlas.embeddings import Neighbour
from atlas.errors import InvalidInput, NotFound, Unavailable
from atlas.media.tags import Tag
from atlas.tagging import Evidence, SourceResult, combine, load_vocabulary, parse_vocabulary
from atlas.tagging.cutoffs import NEVER, Cutoff, Cutoffs, Reviews, learn_cutoff
from atlas.tagging.inputs import TagInput
from atlas.tagging.sources.keyphrases import candidate_phrases
from atlas.tagging.sources.llm import llm_tags
from atlas.tagging.sources.neighbours import VOTE_PRIOR, vote
from conftest import raised_by

# --- vocabulary ------------------------------------------------------------------------


def test_the_default_vocabulary_holds_general_genres_and_topics_with_descriptions():
    vocabulary = load_vocabulary(TaggingSettings())
    assert vocabulary.origin == "the default vocabulary"
    kinds = {entry.kind for entry in vocabulary.entries}
    assert kinds == {"genre", "topic"}
    scifi = vocabulary.get("science fiction")
    assert scifi is not None and scifi.kind == "genre"
    assert scifi.label.startswith("Science Fiction: space, aliens, the future")
    assert all(entry.description for entry in vocabulary.entries)


def test_a_vocabulary_line_has_an_optional_kind_and_description():
    vocabulary = parse_vocabulary(
        "# mine\n\ngenre: Sci-Fi: space and robots\nTravel\ntopic:  Slow TV : long, calm\n",
        "mine.txt",
    )
    assert [(e.name, e.kind, e.description) for e in vocabulary.entries] == [
        ("Sci-Fi", "genre", "space and robots"),
        ("Travel", "topic", ""),
        ("Slow TV", "topic", "long, calm"),
    ]
    assert vocabulary.get("slow tv").label == "Slow TV: long, calm"
    assert "travel" in vocabulary and len(vocabulary) == 3
    same = parse_vocabulary(
        "genre: Sci-Fi: space and robots\nTravel\ntopic: Slow TV: long, calm", "x"
    )
    assert same.digest == vocabulary.digest


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Travel\ntravel\n", "mine.txt, line 2: 'travel' is already on line 1"),
        ("genre: : no name\n", "mine.txt, line 1: a tag cannot be empty"),
        ("keyword: cats\n", "mine.txt, line 1: the kind must be genre or topic, not keyword"),
        ("# only a comment\n\n", "mine.txt: the vocabulary has no tags"),
    ],
)
def test_a_bad_vocabulary_is_refused_with_its_line(text, message):
    with pytest.raises(InvalidInput) as error:
        parse_vocabulary(text, "mine.txt")
    assert error.value.message == message


def test_the_vocabulary_file_replaces_the_default(tmp_path):
    path = tmp_path / "vocabulary.txt"
    path.write_text("genre: Western: cowboys\n", encoding="utf-8")
    vocabulary = load_vocabulary(TaggingSettings(vocabulary_file=path))
    assert [entry.name for entry in vocabulary.entries] == ["Western"]
    assert vocabulary.origin == str(path)
    with pytest.raises(NotFound) as error:
        load_vocabulary(TaggingSettings(vocabulary_file=tmp_path / "gone.txt"))
    assert error.value.message == (
        f"the tag vocabulary {tmp_path / 'gone.txt'} does not exist; "
        "fix or unset tagging.vocabulary_file"
    )


# --- combination --------------------------------------------------------------------------


def _result(source, judged=(), **scores):
    result = SourceResult(source, judged=set(judged))
    for norm, score in scores.items():
        result.add(Evidence(norm.title(), norm, "genre", score, f"{source} says {norm}"))
    return result


def test_confidence_is_the_weighted_mean_over_the_sources_that_judged_the_tag():
    weights = TagSourceWeights(prior=1.0, zero_shot=0.5, neighbours=1.0, profiles=2.0)
    results = {
        "zero_shot": _result("zero_shot", judged={"drama", "horror"}, drama=0.8),
        "neighbours": _result("neighbours", judged={"drama", "horror"}, drama=0.6, horror=0.2),
        # profiles know nothing of horror: their silence does not count against it
        "profiles": _result("profiles", judged={"drama"}, drama=0.9),
    }
    kept, candidates = combine(results, weights, threshold=0.1, max_tags=10)
    by_norm = {p.norm: p for p in candidates}
    assert by_norm["drama"].confidence == round((0.5 * 0.8 + 0.6 + 2 * 0.9) / (1 + 0.5 + 1 + 2), 4)
    assert by_norm["horror"].confidence == round(0.2 / (1 + 0.5 + 1), 4)
    assert by_norm["drama"].scores == {"zero_shot": 0.8, "profiles": 0.9, "neighbours": 0.6}
    # The explanation names each source's evidence, zero-shot first.
    assert by_norm["drama"].explanation == (
        "zero_shot says drama; profiles says drama; neighbours says drama"
    )
    assert [p.norm for p in kept] == ["drama"]


def test_a_tag_one_source_alone_speaks_for_is_damped_by_the_prior():
    results = {"keyphrases": _result("keyphrases", rocket=0.8)}
    with_prior = combine(
        results, TagSourceWeights(prior=1.0, keyphrases=1.0), threshold=0.3, max_tags=5
    )
    without = combine(
        results, TagSourceWeights(prior=0.0, keyphrases=1.0), threshold=0.3, max_tags=5
    )
    assert with_prior[1][0].confidence == 0.4 and without[1][0].confidence == 0.8


def test_threshold_cap_exclusions_and_switched_off_sources():
    results = {
        "neighbours": _result("neighbours", a=0.9, b=0.8, c=0.7, d=0.1),
        "llm": _result("llm", e=1.0),
    }
    weights = TagSourceWeights(prior=0.0, llm=0.0)
    kept, candidates = combine(results, weights, threshold=0.5, max_tags=2, exclude={"a"})
    assert [p.norm for p in kept] == ["b", "c"]
    assert "e" not in {p.norm for p in candidates}  # weight 0: the source is off
    assert kept[0].as_tag() == Tag("B", "genre", "auto", 0.8, "neighbours says b")


def _floor_results():
    """Neighbours that speak weakly for two genres and strongly for a topic."""
    neighbours = _result("neighbours", drama=0.2, horror=0.15)
    neighbours.add(Evidence("Space", "space", "topic", 0.7, "neighbours says space"))
    return {"neighbours": neighbours}


def test_the_genre_floor_keeps_the_most_confident_genre_when_none_reaches_the_threshold():
    weights = TagSourceWeights(prior=0.0)
    results = _floor_results()
    kept, _ = combine(results, weights, threshold=0.5, max_tags=5)
    assert [p.norm for p in kept] == ["space"]  # no floor: no genre
    kept, candidates = combine(results, weights, threshold=0.5, max_tags=5, genre_floor=0.1)
    assert [(p.norm, p.confidence) for p in kept] == [("space", 0.7), ("drama", 0.2)]
    assert kept[1].explanation == (
        "neighbours says drama; below the threshold 0.5, kept as the item's most likely genre "
        "(genre floor 0.1)"
    )
    # The candidate itself is unchanged; only the kept tag says why it was kept.
    assert next(p for p in candidates if p.norm == "drama").explanation == "neighbours says drama"
    # A rejected genre is not kept by the floor; the next one is, if it reaches the floor.
    kept, _ = combine(
        results, weights, threshold=0.5, max_tags=5, exclude={"drama"}, genre_floor=0.1
    )
    assert [p.norm for p in kept] == ["space", "horror"]
    kept, _ = combine(
        results, weights, threshold=0.5, max_tags=5, exclude={"drama"}, genre_floor=0.16
    )
    assert [p.norm for p in kept] == ["space"]


def test_the_genre_floor_adds_nothing_when_a_genre_reaches_the_threshold_and_fits_the_cap():
    weights = TagSourceWeights(prior=0.0)
    results = _floor_results()
    kept, _ = combine(results, weights, threshold=0.18, max_tags=5, genre_floor=0.1)
    assert [p.norm for p in kept] == ["space", "drama"]  # horror (0.15) stays out
    assert "genre floor" not in kept[1].explanation
    # With the cap reached, the floor's genre takes the place of the least confident tag.
    results["neighbours"].add(Evidence("Robots", "robots", "topic", 0.6, "robots"))
    kept, _ = combine(results, weights, threshold=0.5, max_tags=2, genre_floor=0.1)
    assert [p.norm for p in kept] == ["space", "drama"]
    kept, _ = combine(results, weights, threshold=0.5, max_tags=1, genre_floor=0.1)
    assert [p.norm for p in kept] == ["drama"]


# --- keyphrase candidates --------------------------------------------------------------------


def test_candidate_phrases_skip_stopwords_and_common_verbs_and_keep_names_capitalised():
    text = (
        "A spaceship crew follows a comet beyond Jupiter. The crew mines the comet's ice, "
        "and the comet keeps falling towards Jupiter."
    )
    phrases = candidate_phrases(text)
    assert phrases[:3] == ["comet", "crew", "Jupiter"]
    assert "spaceship crew" in phrases
    assert not any("follows" in phrase or "keeps" in phrase for phrase in phrases)
    assert "jupiter" not in phrases


# --- neighbour votes ------------------------------------------------------------------------


def test_confirmed_neighbour_tags_outvote_automatic_ones():
    vocabulary = parse_vocabulary("genre: Crime\ngenre: Comedy\ngenre: Horror\n", "v")
    near = [Neighbour(1, 0.8), Neighbour(2, 0.8), Neighbour(3, 0.4), Neighbour(4, 0.9)]
    tags = {
        1: [Tag("Crime", "genre", "user")],
        2: [Tag("Comedy", "genre", "auto", confidence=0.9)],
        3: [Tag("Crime", "genre", "rule"), Tag("heist", "keyword", "user")],
        4: [],  # untagged neighbours do not vote
    }
    result = vote(0.5, vocabulary, near, tags)
    # Votes over the voters' weight (an automatic voter weighs half), plus one of doubt.
    total = 0.8 + 0.8 * 0.5 + 0.4 + VOTE_PRIOR
    assert result.evidence["crime"].score == pytest.approx((0.8 + 0.4) / total)
    assert result.evidence["comedy"].score == pytest.approx(0.8 * 0.5 * 0.9 / total)
    assert result.evidence["crime"].detail == "2 of 3 nearest tagged items carry it (2 confirmed)"
    # Only one neighbour carries keywords: it alone votes on them.
    assert result.evidence["heist"].score == pytest.approx(0.4 / (0.4 + VOTE_PRIOR))
    assert result.evidence["heist"].detail == "1 of 1 nearest tagged items carry it (1 confirmed)"
    # Horror is a genre nobody near carries: judged, and no evidence.
    assert result.judges("horror") and "horror" not in result.evidence


# --- learned cut-offs -------------------------------------------------------------------


def test_a_cutoff_is_the_confidence_that_would_have_saved_the_most_edits():
    genres = [(0.9, True), (0.8, True), (0.7, True), (0.6, False), (0.5, True), (0.4, False)]
    genres += [(0.35, False), (0.3, False)]
    cutoff = learn_cutoff("genre", genres, threshold=0.24)
    # At 0.7 and at 0.5 the net is 3 kept over removed (showing everything nets 0):
    # the lower one shows more.
    assert (cutoff.cutoff, cutoff.reviewed, cutoff.kept, cutoff.saved) == (0.5, 8, 4, 3)
    assert cutoff.note() == (
        "genre tags need confidence 0.50: you kept 4 of the last 8 (50%); "
        "this cut-off would have saved 3 edits"
    )


def test_a_kind_almost_always_removed_is_not_proposed_and_one_always_kept_keeps_the_threshold():
    keywords = [(0.3 + i / 100, i == 7) for i in range(20)]
    never = learn_cutoff("keyword", keywords, threshold=0.24)
    assert never.cutoff == NEVER and never.never and never.saved == 18
    assert never.note() == "keyword tags not proposed: you kept 1 of the last 20 (5%)"
    always = learn_cutoff("topic", [(0.5 + i / 100, True) for i in range(10)], threshold=0.24)
    assert always.cutoff == 0.24 and always.saved == 0


def test_reviews_make_cutoffs_per_kind_and_per_tag_with_enough_reviews():
    reviews = Reviews()
    for n in range(12):
        # 'drama' is kept 3 times in 4; the other topics almost never.
        reviews.add(
            {"tag": "Drama", "norm": "drama", "kind": "topic", "confidence": 0.4}, n % 4 != 0, 100
        )
        reviews.add(
            {"tag": f"t{n}", "norm": f"t{n}", "kind": "topic", "confidence": 0.5}, False, 100
        )
    reviews.add({"tag": "Noir", "norm": "noir", "kind": "genre", "confidence": 0.6}, True, 100)
    cutoffs = reviews.cutoffs(threshold=0.24, min_reviews=10)
    assert set(cutoffs.kinds) == {"topic"} and set(cutoffs.tags) == {"drama"}
    assert cutoffs.kinds["topic"].cutoff == NEVER  # 9 kept of 24: nothing pays
    assert cutoffs.level("drama", "topic") == 0.24  # its own reviews say: show it
    assert cutoffs.level("t99", "topic") == NEVER
    assert cutoffs.level("noir", "genre") == 0.0  # too few reviews: no cut-off
    assert cutoffs.notes(0.24) == ["topic tags not proposed: you kept 9 of the last 24 (38%)"]
    assert reviews.kinds["topic"][:2] == [(0.4, False), (0.5, False)]  # newest first


def test_a_kind_is_proposed_unless_it_and_each_of_its_own_tags_are_off():
    off = Cutoff("keyword", NEVER, 50, 1, 48)
    assert Cutoffs().proposes("keyword")
    assert not Cutoffs(kinds={"keyword": off}).proposes("keyword")
    assert Cutoffs(kinds={"keyword": Cutoff("keyword", 0.5, 50, 30, 5)}).proposes("keyword")
    heist = Cutoff("keyword", 0.3, 50, 40, 0, tag="heist")
    assert Cutoffs(kinds={"keyword": off}, tags={"heist": heist}).proposes("keyword")


def test_combine_holds_each_tag_to_its_cutoff():
    found = SourceResult("zero_shot")
    for tag, kind, score in (
        ("Drama", "genre", 0.5),
        ("Crime", "genre", 0.9),
        ("Heist", "keyword", 0.8),
        ("Noir", "genre", 0.3),
    ):
        found.add(Evidence(tag, tag.lower(), kind, score, f"zero-shot {score}"))
    weights = TagSourceWeights(zero_shot=1.0, prior=0.0)
    kept, _ = combine({"zero_shot": found}, weights, threshold=0.2, max_tags=10)
    assert [p.norm for p in kept] == ["crime", "heist", "drama", "noir"]
    cutoffs = Cutoffs(
        kinds={
            "genre": Cutoff("genre", 0.6, 50, 30, 5),
            "keyword": Cutoff("keyword", NEVER, 50, 1, 48),
        },
        tags={"noir": Cutoff("genre", 0.24, 50, 40, 0, tag="Noir")},
    )
    kept, _ = combine({"zero_shot": found}, weights, threshold=0.2, max_tags=10, cutoffs=cutoffs)
    assert [p.norm for p in kept] == ["crime", "noir"]


def test_the_genre_floor_does_not_overrule_what_the_users_reviews_taught():
    found = SourceResult("zero_shot")
    found.add(Evidence("Drama", "drama", "genre", 0.15, "zero-shot 0.15"))
    weights = TagSourceWeights(zero_shot=1.0, prior=0.0)
    kept, _ = combine({"zero_shot": found}, weights, threshold=0.2, max_tags=5, genre_floor=0.1)
    assert [p.norm for p in kept] == ["drama"]
    taught = Cutoffs(kinds={"genre": Cutoff("genre", NEVER, 60, 2, 56)})
    kept, _ = combine(
        {"zero_shot": found}, weights, threshold=0.2, max_tags=5, genre_floor=0.1, cutoffs=taught
    )
    assert kept == []


def test_an_ollama_that_accepts_and_never_answers_fails_the_llm_tagger_within_the_timeout(
    silent_server,
):
    host, port = silent_server
    config = TaggingSettings(
        ollama_model="llama3.2", ollama_host=f"http://{host}:{port}", request_timeout_s=1
    )
    item = TagInput(media_id=1, media_type="video", title="Orbit", text="An astronaut.")
    vocabulary = parse_vocabulary("space\n", "test")
    raised = raised_by(lambda: llm_tags(config, vocabulary, [item]))
    assert isinstance(raised, Unavailable)
    assert str(raised) == (
        f"Ollama at http://{host}:{port} (model 'llama3.2') did not answer within 1 s; "
        "check it or raise tagging.request_timeout_s"
    )


# --- self-tuning: when learned values replace the shipped ones ---------------------------


def test_learned_values_replace_the_shipped_ones_on_a_clear_gain_or_one_every_fold_shows():
    from atlas.tagging.selftune import FOLDS, MIN_GAIN, worth_using

    prior = [0.60, 0.62, 0.61, 0.63, 0.59]
    # A clear gain over every item is enough, whatever one fold says.
    assert worth_using(0.61, 0.61 + MIN_GAIN, prior, [0.70, 0.70, 0.70, 0.70, 0.50])
    # A small gain counts only when every fold has it.
    small = [f + 0.004 for f in prior]
    assert worth_using(0.61, 0.614, prior, small)
    assert not worth_using(0.61, 0.614, prior, [*small[:-1], prior[-1]])  # 4 of 5 folds
    assert not worth_using(0.61, 0.61, prior, prior)  # no gain: nothing to change
    # Without per-fold scores (or a single fold) only a clear gain counts.
    assert not worth_using(0.61, 0.614, [], [])
    assert not worth_using(0.61, 0.614, [0.61], [0.614])
    assert len(prior) == FOLDS
