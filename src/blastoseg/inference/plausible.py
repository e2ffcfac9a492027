"""Which found instances can be blastomeres (inside the embryo, not a cluster of others)
and which can be fragments (inside the embryo, between the cells).

A detector trained on embryos alone may call the culture well or the whole embryo a
"cell". Two rules that hold for any embryo, whatever the instrument, remove them: a
blastomere lies inside the zona pellucida, and its amodal extent cannot hold two other
blastomeres (a mask that does is the union of cells, not one of them).
"""

from __future__ import annotations

import numpy as np

from blastoseg.instances import Instances

INSIDE = 0.5  # of an instance's area that must lie inside the zona: most of it
HELD = 0.7  # of a smaller instance's area inside a larger one for it to count as held


def inside_fraction(instances: Instances, region: np.ndarray) -> np.ndarray:
    """Per instance, the fraction of its area inside the boolean `region` (same shape as the image)."""
    if region.shape != instances.shape:
        raise ValueError(f"region {region.shape} and instances {instances.shape} differ in shape")
    return np.array(
        [region[y0:y1, x0:x1][mask].mean() if mask.any() else 0.0 for (y0, x0, y1, x1), mask in zip(instances.boxes, instances.masks)],
        np.float32,
    )


def clusters(instances: Instances, held: float = HELD) -> np.ndarray:
    """Boolean per instance: it holds at least two others (each `held` of its area inside it)."""
    count = np.zeros(len(instances), np.int64)
    if len(instances) >= 3:
        rows, cols, inter = instances.intersections(instances)
        areas = instances.areas()
        holds = (rows != cols) & (inter >= held * np.maximum(areas[cols], 1)) & (areas[rows] > areas[cols])
        np.add.at(count, rows[holds], 1)
    return count >= 2


def plausible_cells(instances: Instances, inside_zona: np.ndarray | None) -> Instances:
    """The instances that can be blastomeres: not clusters of others, and, when the space
    inside the zona is known, mostly inside it."""
    keep = ~clusters(instances)
    if inside_zona is not None and len(instances):
        keep &= inside_fraction(instances, inside_zona) >= INSIDE
    return instances[np.flatnonzero(keep)]


ON_CELL = 0.5  # of a fragment's area under the cells above which it is part of a cell


def plausible_fragments(fragments: Instances, inside_zona: np.ndarray | None, cells: Instances) -> Instances:
    """The fragments that can be: lying between the cells, not on one, and, when the space
    inside the zona is known, mostly inside it (debris beyond the zona is no fragment)."""
    if not len(fragments):
        return fragments
    keep = np.ones(len(fragments), bool)
    if len(cells):
        keep &= inside_fraction(fragments, cells.coverage() > 0) < ON_CELL
    if inside_zona is not None:
        keep &= inside_fraction(fragments, inside_zona) >= INSIDE
    return fragments[np.flatnonzero(keep)]
