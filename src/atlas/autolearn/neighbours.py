"""Blocks of cosine similarities between unit vectors, for finding each item's neighbours.

Up to ``EXACT_UP_TO`` items every item is compared with every other. Beyond that
an inverted-file index stands in for the full comparison (each item would
otherwise cost a pass over the whole library): the vectors are split into about
sqrt(n) cells by a few rounds of spherical k-means on a sample, and the items of
each cell are compared with the items of the ``PROBES`` cells whose centres are
nearest its own. Near neighbours share a cell or a neighbouring one, so what is
found is exact for them; a neighbour across a far cell boundary can be missed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

__all__ = ["EXACT_UP_TO", "PROBES", "similarity_blocks"]

EXACT_UP_TO = 3000
PROBES = 6
_CHUNK = 1024
_ROUNDS = 6


def similarity_blocks(matrix: Any, seed: int = 0) -> Iterator[tuple[Any, Any, Any]]:
    """Yield ``(rows, columns, block)``: item indices and their similarities.

    ``block[i, j]`` is the cosine similarity of item ``rows[i]`` and item
    ``columns[j]``, with an item's similarity to itself set to -1. Every item
    appears in ``rows`` exactly once.
    """
    # Many small products: a BLAS thread pool costs more to wake than it saves
    # (measured: ~6x slower on a busy machine), so one thread does them.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn (the ml extra)
        yield from _blocks(matrix, seed)
        return
    with threadpool_limits(1):
        yield from _blocks(matrix, seed)


def _blocks(matrix: Any, seed: int) -> Iterator[tuple[Any, Any, Any]]:
    import numpy as np

    n = len(matrix)
    everyone = np.arange(n)
    if n <= EXACT_UP_TO:
        for start in range(0, n, _CHUNK):
            rows = everyone[start : start + _CHUNK]
            block = matrix[rows] @ matrix.T
            block[np.arange(len(rows)), rows] = -1.0
            yield rows, everyone, block
        return
    rng = np.random.default_rng(seed)
    cells = max(2, round(math.sqrt(n)))
    sample = matrix[rng.choice(n, min(n, 30 * cells), replace=False)]
    centres = sample[rng.choice(len(sample), cells, replace=False)].copy()
    for _ in range(_ROUNDS):
        nearest = (sample @ centres.T).argmax(axis=1)
        for cell in range(cells):
            members = sample[nearest == cell]
            if len(members):
                mean = members.sum(axis=0)
                norm = float(np.linalg.norm(mean))
                if norm > 0:
                    centres[cell] = mean / norm
    home = (matrix @ centres.T).argmax(axis=1)
    probes = min(PROBES, cells)
    centre_sims = centres @ centres.T
    near_cells = np.argsort(-centre_sims, axis=1)[:, :probes]
    by_cell = [np.nonzero(home == cell)[0] for cell in range(cells)]
    for cell in range(cells):
        rows = by_cell[cell]
        if not len(rows):
            continue
        columns = np.concatenate([by_cell[c] for c in near_cells[cell]])
        block = matrix[rows] @ matrix[columns].T
        same = rows[:, None] == columns[None, :]
        block[same] = -1.0
        yield rows, columns, block
