"""Which boxes overlap: candidate pairs by a uniform grid, in time linear in the boxes.

Comparing every box with every other costs N x M; tiled segmentation of a large image
yields tens of thousands of instances, so the pairs are found through the grid cells
each box covers instead.
"""

from __future__ import annotations

import numpy as np


def overlapping_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays of every box a[i] that overlaps box b[j] (y0, x0, y1, x1; end exclusive)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sides = np.concatenate([a[:, 2:] - a[:, :2], b[:, 2:] - b[:, :2]]).ravel()
    cell = max(int(np.median(sides)) * 2, 16)
    buckets: dict[tuple[int, int], list[int]] = {}
    for j, (y0, x0, y1, x1) in enumerate((b // [cell, cell, 1, 1]).tolist()):
        for cy in range(y0, (y1 - 1) // cell + 1):
            for cx in range(x0, (x1 - 1) // cell + 1):
                buckets.setdefault((cy, cx), []).append(j)
    pairs: set[tuple[int, int]] = set()
    for i, (y0, x0, y1, x1) in enumerate((a // [cell, cell, 1, 1]).tolist()):
        for cy in range(y0, (y1 - 1) // cell + 1):
            for cx in range(x0, (x1 - 1) // cell + 1):
                pairs.update((i, j) for j in buckets.get((cy, cx), ()))
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i, j = np.array(sorted(pairs), np.int64).T
    keep = (np.maximum(a[i, 0], b[j, 0]) < np.minimum(a[i, 2], b[j, 2])) & (
        np.maximum(a[i, 1], b[j, 1]) < np.minimum(a[i, 3], b[j, 3])
    )
    return i[keep], j[keep]
