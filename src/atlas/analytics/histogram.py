"""A fixed log-scale histogram of durations, so summaries can answer percentiles.

Bucket 0 holds durations of 0 ms (or less); bucket ``b >= 1`` holds durations
``d`` with ``2 ** ((b - 1) / 8) <= d < 2 ** (b / 8)``: eight buckets per doubling,
each 9% wider than the last. The bucket is computed in SQL while folding (see
:func:`bucket_sql`). A histogram is a dense list of counts indexed by bucket
(about 200 buckets reach a day), stored as a JSON list; histograms of several
days or types merge by adding counts.

A percentile read from a histogram assumes the values in its bucket are spread
evenly on the log scale and is clamped to the observed min and max, so it is
within half a bucket (about 4.5%) of the exact value, and exact when every value
is the same.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Iterable, Sequence

__all__ = [
    "BUCKETS_PER_DOUBLING",
    "Histogram",
    "add_count",
    "bucket_bounds",
    "bucket_of",
    "bucket_sql",
    "histogram_percentiles",
    "merge_histograms",
    "merge_into",
]

BUCKETS_PER_DOUBLING = 8
# Keeps exact powers of two in the same bucket whatever the rounding of log2.
_EPSILON = 1e-9

#: Counts indexed by bucket.
Histogram = list[int]


def bucket_of(duration_ms: float) -> int:
    """The bucket of one duration (the same rule as :func:`bucket_sql`)."""
    if duration_ms <= 0:
        return 0
    return 1 + math.floor(math.log2(duration_ms) * BUCKETS_PER_DOUBLING + _EPSILON)


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The durations ``[low, high)`` a bucket holds; ``(0, 0)`` for bucket 0."""
    if bucket <= 0:
        return 0.0, 0.0
    return (
        2.0 ** ((bucket - 1) / BUCKETS_PER_DOUBLING),
        2.0 ** (bucket / BUCKETS_PER_DOUBLING),
    )


def bucket_sql(column: str, dialect: str) -> str:
    """A SQL expression giving the bucket of ``column`` (NULL stays NULL)."""
    if dialect == "postgresql":
        log2 = f"(ln(CAST({column} AS double precision)) / {math.log(2)!r})"
        scaled = f"floor({log2} * {BUCKETS_PER_DOUBLING} + {_EPSILON!r})"
        body = f"1 + CAST({scaled} AS integer)"
    else:
        # SQLite: log2() is built in since 3.35 (Atlas registers a fallback for
        # builds without math functions); CAST truncates, and the value is >= 0.
        body = f"1 + CAST(log2({column}) * {BUCKETS_PER_DOUBLING} + {_EPSILON!r} AS INTEGER)"
    return f"(CASE WHEN {column} IS NULL THEN NULL WHEN {column} <= 0 THEN 0 ELSE {body} END)"


def add_count(histogram: Histogram, bucket: int, count: int) -> None:
    """Count ``count`` more values in ``bucket``, growing the list as needed."""
    if bucket >= len(histogram):
        histogram.extend([0] * (bucket + 1 - len(histogram)))
    histogram[bucket] += count


def merge_into(target: Histogram, other: Sequence[int]) -> None:
    """Add the counts of ``other`` to ``target`` in place."""
    size = len(other)
    if size > len(target):
        target.extend([0] * (size - len(target)))
    if size == len(target):
        target[:] = map(operator.add, target, other)
    else:
        target[:size] = map(operator.add, target[:size], other)


def merge_histograms(histograms: Iterable[Sequence[int]]) -> Histogram:
    """The sum of several histograms."""
    merged: Histogram = []
    for histogram in histograms:
        merge_into(merged, histogram)
    return merged


def histogram_percentiles(
    histogram: Sequence[int],
    quantiles: Sequence[float],
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> list[float | None]:
    """Estimate the ``quantiles`` (0..1) of the values counted in ``histogram``.

    Ranks are placed as for linear interpolation between closest ranks (as
    PostgreSQL's ``percentile_cont``); within a bucket values are assumed evenly
    spread on the log scale. ``minimum``/``maximum`` clamp the estimates.
    None for each quantile when the histogram is empty.
    """
    cumulative = list(itertools.accumulate(histogram))
    total = cumulative[-1] if cumulative else 0
    if total <= 0:
        return [None] * len(quantiles)
    estimates: list[float | None] = []
    for q in quantiles:
        rank = q * (total - 1)
        bucket = bisect.bisect_right(cumulative, rank)
        seen = cumulative[bucket - 1] if bucket > 0 else 0
        low, high = bucket_bounds(bucket)
        if bucket <= 0:
            estimate = 0.0
        else:
            fraction = (rank - seen + 0.5) / histogram[bucket]
            estimate = low * (high / low) ** fraction
        if minimum is not None:
            estimate = max(estimate, minimum)
        if maximum is not None:
            estimate = min(estimate, maximum)
        estimates.append(estimate)
    return estimates
