"""The lexical index stays current through writes, in this process and in others."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from sqlalchemy import delete, func, select, update

from atlas.caches import CACHES
from atlas.db.tables import media, search_changes
from atlas.embeddings import search_media, similar_media
from atlas.embeddings.lexical_sync import build_lexical_index, get_lexical_index
from atlas.media.tags import Tag, upsert_tags
from atlas.transcription.store import save_transcript
from atlas.transcription.whisper import Transcript

QUERIES = ("detective murder", "space rocket", "bread dumplings", "submarine", "glacier")


def _same_as_fresh(engine) -> None:
    """The kept-current index ranks exactly like one built from scratch."""
    kept, fresh = get_lexical_index(engine), build_lexical_index(engine)
    assert sorted(kept.media_ids.tolist()) == sorted(fresh.media_ids.tolist())
    assert kept.tags == fresh.tags and kept.tag_rarity == pytest.approx(fresh.tag_rarity)
    for query in QUERIES:
        ours, theirs = kept.search(query, 20), fresh.search(query, 20)
        assert [h.media_id for h in ours] == [h.media_id for h in theirs]
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs])
        assert kept.term_idfs(query) == pytest.approx(fresh.term_idfs(query))


def _current(feed, engine) -> bool:
    with engine.connect() as connection:
        return bool(feed.is_current(connection))


def _found(engine, words: str) -> list[int]:
    return [hit.media_id for hit in get_lexical_index(engine).search(words, 20)]


def test_edits_tags_transcripts_and_deletes_are_searchable_at_once(atlas, themed_library):
    engine = atlas.engine
    first = get_lexical_index(engine)
    assert get_lexical_index(engine) is first  # nothing changed: the same index
    dumplings, kitchen = themed_library["Sunday Dumplings"], themed_library["Kitchen Chemistry"]
    assert _found(engine, "submarine") == []

    with engine.begin() as connection:
        connection.execute(
            update(media)
            .where(media.c.id == dumplings)
            .values(description="Dumplings folded by a submarine captain.")
        )
    assert _found(engine, "submarine") == [dumplings]

    with engine.begin() as connection:
        upsert_tags(connection, kitchen, [Tag("Glacier", kind="topic", source="user")])
    assert _found(engine, "glacier") == [kitchen]
    assert "glacier" in get_lexical_index(engine).tags[kitchen]
    _same_as_fresh(engine)

    save_transcript(
        engine,
        dumplings,
        Transcript(text="The narrator whistles a sea shanty.", segments=[], source="sidecar"),
        None,
    )
    assert _found(engine, "shanty") == [dumplings]

    with engine.begin() as connection:
        connection.execute(delete(media).where(media.c.id == dumplings))
    assert _found(engine, "shanty") == [] and _found(engine, "submarine") == []
    assert dumplings not in get_lexical_index(engine).media_ids.tolist()
    assert dumplings not in get_lexical_index(engine).tags
    # Words only the deleted item held are no longer counted in fusion's rarity.
    assert get_lexical_index(engine).term_idfs("shanty") == []
    _same_as_fresh(engine)


def test_an_index_whose_changes_were_pruned_is_rebuilt(atlas, themed_library):
    engine = atlas.engine
    get_lexical_index(engine)
    kitchen = themed_library["Kitchen Chemistry"]
    with engine.begin() as connection:
        upsert_tags(connection, kitchen, [Tag("Walrus", source="user")])
        upsert_tags(connection, kitchen, [Tag("Penguin", source="user")])
        first_change = connection.execute(select(func.max(search_changes.c.id))).scalar_one()
        connection.execute(delete(search_changes).where(search_changes.c.id <= first_change))
        upsert_tags(connection, kitchen, [Tag("Narwhal", source="user")])
    assert _found(engine, "walrus") == _found(engine, "narwhal") == [kitchen]
    _same_as_fresh(engine)


def test_a_search_waits_for_the_refresh_lock_only_when_something_changed(atlas, themed_library):
    """Concurrent searches of an unchanged library do not queue behind one lock; after a
    write, a search waits for the refresh in progress and then sees the write."""
    engine = atlas.engine
    get_lexical_index(engine)
    cached = CACHES.lexical.get(str(engine.url), lambda: pytest.fail("not cached"))
    kitchen = themed_library["Kitchen Chemistry"]
    found: list[list[int]] = []
    with cached.lock:  # another thread refreshing, as far as searches can tell
        searcher = threading.Thread(target=lambda: found.append(_found(engine, "detective")))
        searcher.start()
        searcher.join(timeout=10)
        assert not searcher.is_alive() and found  # nothing changed: answered without the lock

        with engine.begin() as connection:
            upsert_tags(connection, kitchen, [Tag("Lighthouse", source="user")])
        searcher = threading.Thread(target=lambda: found.append(_found(engine, "lighthouse")))
        searcher.start()
        searcher.join(timeout=0.5)
        assert searcher.is_alive()  # a change: it waits for the refresh in progress
    searcher.join(timeout=10)
    assert found[-1] == [kitchen]
    _same_as_fresh(engine)


def test_a_change_made_by_another_process_reaches_a_running_server(atlas, themed_library):
    """Another process holds an index, this one writes; the other finds the new words."""
    script = textwrap.dedent(
        """
        import sys
        from atlas.db import make_engine
        from atlas.embeddings.lexical_sync import get_lexical_index
        engine = make_engine(sys.argv[1])
        print(len(get_lexical_index(engine)), flush=True)
        for line in sys.stdin:
            hits = get_lexical_index(engine).search(line.strip(), 20)
            print(" ".join(str(h.media_id) for h in hits) or "-", flush=True)
        """
    )
    url = atlas.engine.url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, "-c", script, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert int(child.stdout.readline()) == len(themed_library)
        kitchen, dumplings = themed_library["Kitchen Chemistry"], themed_library["Sunday Dumplings"]
        with atlas.engine.begin() as connection:
            upsert_tags(connection, kitchen, [Tag("Lighthouse", source="user")])
            connection.execute(delete(media).where(media.c.id == dumplings))
        child.stdin.write("lighthouse\ndumplings\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == [str(kitchen)]
        assert str(dumplings) not in child.stdout.readline().split()
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def test_hybrid_search_finds_a_newly_tagged_item_by_its_new_words(atlas, embedded_library):
    kitchen = embedded_library["Kitchen Chemistry"]
    query, every = "lighthouse keeper", len(embedded_library)

    def why() -> dict[int, str]:
        found = search_media(atlas.settings, atlas.engine, query, mode="hybrid", top=every)
        return {hit.media_id: hit.why for hit in found.hits}

    assert "lighthouse" not in why().get(kitchen, "")
    with atlas.engine.begin() as connection:
        upsert_tags(connection, kitchen, [Tag("Lighthouse keeper", source="user")])
    assert "lighthouse" in why()[kitchen]
    lexical = search_media(atlas.settings, atlas.engine, query, mode="lexical")
    assert [hit.media_id for hit in lexical.hits] == [kitchen]


def test_more_like_this_sees_a_genre_confirmed_after_the_index_was_built(atlas, embedded_library):
    kitchen, vault = embedded_library["Kitchen Chemistry"], embedded_library["The Vault Job"]
    every = len(embedded_library) - 1

    def why() -> str:
        found = similar_media(atlas.settings, atlas.engine, kitchen, top=every)
        return {hit.media_id: hit.why for hit in found.hits}[vault]

    assert "zydeco" not in why().casefold()
    with atlas.engine.begin() as connection:
        for media_id in (kitchen, vault):
            upsert_tags(connection, media_id, [Tag("Zydeco", kind="genre", source="user")])
    assert "same genre" in why() and "zydeco" in why().casefold()


def test_a_replaced_index_ranks_like_one_built_from_scratch_through_merges():
    """Many small changes (edits, new words, deletes, items added), across several merges
    of the delta into the base: ranking, scores, ties and word rarity stay exact."""
    import random

    from atlas.embeddings.lexical import LexicalDocument, LexicalIndex

    rng = random.Random(3)
    words = [f"w{i}" for i in range(300)]

    def document(media_id: int) -> LexicalDocument:
        tokens = [rng.choice(words[: rng.randrange(5, 300)]) for _ in range(rng.randrange(1, 40))]
        genres = frozenset(rng.sample(["drama", "comedy", "war"], rng.randrange(0, 3)))
        tags = frozenset(rng.sample(["a", "b", "c", "d"], rng.randrange(0, 3)))
        return LexicalDocument(media_id, tokens, rng.choice(["video", "audio"]), genres, tags)

    documents = {media_id: document(media_id) for media_id in range(1, 300)}
    index = LexicalIndex.of(list(documents.values()))
    merges = 0
    for step in range(300):
        changed: dict[int, LexicalDocument | None] = {}
        for _ in range(rng.randrange(1, 8)):
            media_id = rng.randrange(1, 1200)
            changed[media_id] = None if rng.random() < 0.2 else document(media_id)
            if rng.random() < 0.05:
                changed[media_id] = LexicalDocument(
                    media_id, [f"new{step}"], "video", frozenset(), frozenset()
                )
        for media_id, doc in changed.items():
            if doc is None:
                documents.pop(media_id, None)
            else:
                documents[media_id] = doc
        before = index
        index = index.replaced(changed)
        merges += index._base is not before._base
        if step % 30 and step != 299:
            continue
        fresh = LexicalIndex.of(list(documents.values()))
        assert index.media_ids.tolist() == fresh.media_ids.tolist() and len(index) == len(fresh)
        assert index.tags == fresh.tags
        assert index.tag_rarity == pytest.approx(fresh.tag_rarity)
        for query in ("w1 w2", "w3", "w10 w200 w5", f"new{step}", "w299"):
            for options in ({}, {"media_type": "video"}, {"genre": "Drama"}):
                ours, theirs = (
                    index.search(query, 10, **options),
                    fresh.search(query, 10, **options),
                )
                assert [(h.media_id, h.score) for h in ours] == [
                    (h.media_id, h.score) for h in theirs
                ]
            assert index.term_idfs(query) == fresh.term_idfs(query)
    assert merges >= 2


def test_an_id_skipped_in_the_change_log_does_not_keep_searches_refreshing(atlas, themed_library):
    """An id the log skipped (a rolled-back insert on PostgreSQL; here a row removed) is
    awaited, yet searches of an unchanged library stay off the refresh path; when the
    id does arrive, the next search reads it."""
    engine = atlas.engine
    get_lexical_index(engine)
    kitchen, dumplings = themed_library["Kitchen Chemistry"], themed_library["Sunday Dumplings"]
    with engine.begin() as connection:
        upsert_tags(connection, kitchen, [Tag("Walrus", source="user")])
        skipped = connection.execute(select(func.max(search_changes.c.id))).scalar_one()
        upsert_tags(connection, dumplings, [Tag("Penguin", source="user")])
        connection.execute(delete(search_changes).where(search_changes.c.id == skipped))
    assert _found(engine, "penguin") == [dumplings]
    cached = CACHES.lexical.get(str(engine.url), lambda: pytest.fail("not cached"))
    assert skipped in cached.feed.gaps
    assert _current(cached.feed, engine)
    before = get_lexical_index(engine)
    assert get_lexical_index(engine) is before  # nothing re-read

    with engine.begin() as connection:  # the awaited change commits at last
        connection.execute(search_changes.insert().values(id=skipped, media_id=kitchen))
    assert not _current(cached.feed, engine)
    assert _found(engine, "walrus") == [kitchen]
    assert skipped not in cached.feed.gaps and _current(cached.feed, engine)
    _same_as_fresh(engine)
