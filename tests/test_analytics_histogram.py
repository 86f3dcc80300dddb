"""The log-scale duration histogram: buckets, and percentiles estimated from it."""

from __future__ import annotations

import random

import pytest

from atlas.analytics.histogram import (
    add_count,
    bucket_bounds,
    bucket_of,
    histogram_percentiles,
    merge_histograms,
)
from atlas.analytics.window import percentile_of_sorted


def test_every_duration_falls_inside_the_bounds_of_its_bucket():
    for duration in [1, 2, 3, 7, 8, 9, 100, 1000, 1024, 65_535, 10**7, 2**27]:
        low, high = bucket_bounds(bucket_of(duration))
        assert low <= duration < high * (1 + 1e-9)
    assert bucket_of(0) == 0 and bucket_of(-5) == 0
    assert bucket_bounds(0) == (0.0, 0.0)


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_percentiles_from_a_histogram_are_within_five_percent_of_exact(q):
    rng = random.Random(3)
    values = sorted(int(rng.lognormvariate(6, 1.2)) + 1 for _ in range(20_000))
    histogram: list[int] = []
    for value in values:
        add_count(histogram, bucket_of(value), 1)
    [estimate] = histogram_percentiles(histogram, [q], minimum=values[0], maximum=values[-1])
    exact = percentile_of_sorted(values, q)
    assert estimate is not None and exact is not None
    assert abs(estimate - exact) / exact < 0.05


def test_a_histogram_of_equal_values_gives_that_value_exactly():
    histogram: list[int] = []
    add_count(histogram, bucket_of(1200), 5)
    assert histogram_percentiles(histogram, [0.5, 0.95], minimum=1200, maximum=1200) == [
        1200,
        1200,
    ]
    assert histogram_percentiles([3], [0.5], minimum=0, maximum=0) == [0]
    assert histogram_percentiles([], [0.5, 0.95]) == [None, None]
    assert histogram_percentiles([0, 0], [0.5]) == [None]


def test_estimates_fall_in_the_bucket_that_holds_the_rank():
    histogram: list[int] = []
    for value, count in ((10, 40), (1000, 59), (100_000, 1)):
        add_count(histogram, bucket_of(value), count)
    p50, p95, p100 = histogram_percentiles(histogram, [0.5, 0.95, 1.0])
    assert bucket_of(p50) == bucket_of(1000) and bucket_of(p95) == bucket_of(1000)
    assert bucket_of(p100) == bucket_of(100_000)


def test_merged_histograms_add_their_counts():
    assert merge_histograms([[0, 2, 0, 1], [1, 0, 3], []]) == [1, 2, 3, 1]


def test_exact_percentiles_interpolate_between_ranks_like_percentile_cont():
    assert percentile_of_sorted([100, 200, 300, 400, 1000], 0.5) == 300
    assert percentile_of_sorted([100, 200, 300, 400, 1000], 0.95) == pytest.approx(880)
    assert percentile_of_sorted([7], 0.95) == 7
    assert percentile_of_sorted([], 0.5) is None
