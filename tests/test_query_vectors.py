"""Query vectors kept by a long-lived Library: a repeated search text skips the model."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from atlas.app import Atlas
from atlas.embeddings import QueryVectors, search_media
from atlas.library import Library


def test_a_repeated_text_is_answered_from_the_table(embedding_model: Any) -> None:
    table = QueryVectors(size=4)
    first = table.embed(embedding_model, "a heist that goes wrong")
    again = table.embed(embedding_model, "a heist that goes wrong")
    assert again is first  # the same array: the model did not run again
    assert np.allclose(first, embedding_model.embed(["a heist that goes wrong"])[0], atol=1e-5)
    with pytest.raises(ValueError):
        first[0] = 0.0  # read-only: no caller can change what the next one gets


def test_the_least_recently_used_text_leaves_a_full_table(embedding_model: Any) -> None:
    table = QueryVectors(size=2)
    kept = table.embed(embedding_model, "space station")
    dropped = table.embed(embedding_model, "haunted house")
    table.embed(embedding_model, "space station")  # used again: now the most recent
    table.embed(embedding_model, "love story")
    assert len(table) == 2
    assert table.embed(embedding_model, "space station") is kept
    assert table.embed(embedding_model, "haunted house") is not dropped


def test_library_search_reuses_the_vector_of_a_repeated_query(
    atlas: Atlas, embedded_library: dict[str, int]
) -> None:
    library = Library(atlas)
    library.search("astronauts on a space station", mode="vector", top=3)
    assert len(library.query_vectors) == 1
    again = library.search("astronauts   on a space station", mode="hybrid", top=3)
    assert len(library.query_vectors) == 1  # the same words, spaced otherwise
    fresh = search_media(atlas.settings, atlas.engine, "astronauts on a space station", top=3)
    assert again.to_dict() == fresh.to_dict()
    library.search("astronauts", mode="lexical", top=3)
    assert len(library.query_vectors) == 1  # lexical search needs no vector


def test_clients_asking_for_the_same_new_text_at_once_share_one_pass(
    embedding_model: Any,
) -> None:
    table = QueryVectors(size=4)
    got: list[Any] = []
    threads = [
        threading.Thread(target=lambda: got.append(table.embed(embedding_model, "war drama")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(vector is got[0] for vector in got)
    assert len(table) == 1
