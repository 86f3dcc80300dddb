"""The one cache type: bounded, least recently used out first, each value built once."""

from __future__ import annotations

import threading

import pytest

from atlas.caches import CACHES, Caches
from atlas.memo import Memo


def _memo(max_entries: int = 4, **options) -> Memo:
    return Memo("test", max_entries=max_entries, scope="library", holds="test values", **options)


def _run(target, count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_a_value_is_built_once_then_served_from_the_cache():
    memo = _memo()
    builds = []
    assert memo.get("a", lambda: builds.append(1) or "A") == "A"
    assert memo.get("a", lambda: builds.append(1) or "other") == "A"
    assert builds == [1]
    assert "a" in memo and len(memo) == 1


def test_the_least_recently_used_value_goes_first():
    memo = _memo(max_entries=2)
    memo.get("a", lambda: 1)
    memo.get("b", lambda: 2)
    memo.get("a", lambda: 0)  # a used again: b is now the oldest
    memo.get("c", lambda: 3)
    assert "a" in memo and "c" in memo and "b" not in memo
    assert memo.lookup("a") == 1
    memo.put("d", 4)  # lookup touched a: c goes
    assert "c" not in memo and len(memo) == 2


def test_none_is_a_value_that_is_cached():
    memo = _memo()
    builds = []
    assert memo.get("a", lambda: builds.append(1)) is None
    assert memo.get("a", lambda: builds.append(1)) is None
    assert builds == [1]


def test_a_new_version_replaces_the_older_ones_of_its_family():
    memo = _memo(family=lambda key: key[0])
    memo.get(("lib1", 1), lambda: "v1")
    memo.get(("lib2", 1), lambda: "other library")
    memo.get(("lib1", 2), lambda: "v2")
    assert ("lib1", 1) not in memo
    assert memo.lookup(("lib1", 2)) == "v2"
    assert memo.lookup(("lib2", 1)) == "other library"


def test_concurrent_callers_wait_for_one_build():
    memo = _memo()
    started = threading.Event()
    release = threading.Event()
    builds = []
    results = []
    callers = 5
    arrived = threading.Barrier(callers + 1)

    def build():
        builds.append(threading.get_ident())
        started.set()
        release.wait()
        return "built"

    def first():
        results.append(memo.get("k", build))

    def others():
        arrived.wait()
        results.append(memo.get("k", build))

    builder = _run(first, 1)
    started.wait()
    waiting = _run(others, callers)
    arrived.wait()  # every other caller is about to ask while the build runs
    release.set()
    for thread in builder + waiting:
        thread.join()
    assert len(builds) == 1
    assert results == ["built"] * (callers + 1)


def test_a_slow_build_does_not_hold_up_other_keys():
    memo = _memo()
    started = threading.Event()
    release = threading.Event()

    def slow():
        started.set()
        release.wait()
        return "slow"

    builder = _run(lambda: memo.get("slow", slow), 1)
    started.wait()
    # The slow build still runs (release is unset): another key is built and served.
    assert memo.get("quick", lambda: "quick") == "quick"
    release.set()
    builder[0].join()
    assert memo.lookup("slow") == "slow"


def test_a_failed_build_raises_to_every_waiter_and_caches_nothing():
    memo = _memo()
    started = threading.Event()
    release = threading.Event()
    callers = 3
    arrived = threading.Barrier(callers + 1)
    raised = []

    def build():
        started.set()
        release.wait()
        raise ValueError("model missing")

    def call(wait: bool):
        if wait:
            arrived.wait()
        try:
            memo.get("k", build)
        except ValueError as exc:
            raised.append(str(exc))

    builder = _run(lambda: call(False), 1)
    started.wait()
    waiting = _run(lambda: call(True), callers)
    arrived.wait()
    release.set()
    for thread in builder + waiting:
        thread.join()
    assert raised == ["model missing"] * (callers + 1)
    assert "k" not in memo
    assert memo.get("k", lambda: "second try") == "second try"


def test_a_build_running_when_the_memo_is_cleared_is_not_kept():
    memo = _memo()
    started = threading.Event()
    release = threading.Event()
    results = []

    def build():
        started.set()
        release.wait()
        return "stale"

    builder = _run(lambda: results.append(memo.get("k", build)), 1)
    started.wait()
    memo.clear()
    # After the clear a caller builds afresh instead of waiting for the stale build.
    assert memo.get("k", lambda: "fresh") == "fresh"
    release.set()
    builder[0].join()
    assert results == ["stale"]
    assert memo.lookup("k") == "fresh"


def test_a_build_that_needs_its_own_key_fails_instead_of_waiting_forever():
    memo = _memo()
    with pytest.raises(RuntimeError, match="needs"):
        memo.get("k", lambda: memo.get("k", lambda: "inner"))
    assert "k" not in memo


def test_clearing_the_library_caches_keeps_the_loaded_models():
    caches = Caches()  # not the process's: its loaded model must stay for the other tests
    marker = object()
    caches.providers.put(("model",), marker)
    caches.stores.put(("folder",), marker)
    caches.clear("library")
    assert caches.providers.lookup(("model",)) is marker
    assert caches.stores.lookup(("folder",)) is None
    caches.clear()
    assert caches.providers.lookup(("model",)) is None


def test_every_cache_of_the_process_says_what_it_holds():
    names = [memo.name for memo in CACHES]
    assert len(names) == len(set(names)) >= 10
    for memo in CACHES:
        assert memo.holds and memo.scope in ("library", "process")
