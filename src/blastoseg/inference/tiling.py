"""Tiling: segment images of any size with memory bounded by the tile.

Tiles overlap by at least the largest object. Each tile keeps only the instances whose
box centre lies in its core (the tile minus half the overlap on every inner side), so
an object is reported by exactly one tile, the one that sees it whole. Instances of
neighbouring tiles that still overlap at a seam (IoU >= 0.5) are merged, keeping the
higher score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from blastoseg.inference.merging import merge_duplicates
from blastoseg.instances import Instances


@dataclass(frozen=True)
class Tile:
    y0: int
    x0: int
    y1: int
    x1: int
    core: tuple[int, int, int, int]  # y0, x0, y1, x1 in image coordinates


def _starts(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[list[int], int]:
    """Tile starts along one axis and the tile length actually used.

    The fewest tiles that cover `length` are made just long enough to meet with exactly
    `overlap`, so the redundant work is the overlap and no more.
    """
    if length <= tile:
        return [0], length
    count = int(np.ceil((length - overlap) / (tile - overlap)))
    size = int(np.ceil((length - overlap) / count)) + overlap
    size = min(-(-size // multiple) * multiple, tile)  # the network pads to a multiple anyway
    return [min(i * (size - overlap), length - size) for i in range(count)], size


def plan_tiles(shape: tuple[int, int], tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """Overlapping tiles covering `shape`; cores partition the image."""
    if overlap * 2 >= tile:
        raise ValueError(f"tile overlap {overlap} must be less than half the tile size {tile}")
    h, w = shape
    (ys, th), (xs, tw) = _starts(h, tile, overlap, multiple), _starts(w, tile, overlap, multiple)

    def cores(starts: list[int], length: int, size: int) -> list[tuple[int, int]]:
        ends = [min(s + size, length) for s in starts]
        bounds = [0] + [(ends[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)] + [length]
        return list(zip(bounds[:-1], bounds[1:]))

    cy, cx = cores(ys, h, th), cores(xs, w, tw)
    return [
        Tile(y, x, min(y + th, h), min(x + tw, w), (cy[i][0], cx[j][0], cy[i][1], cx[j][1]))
        for i, y in enumerate(ys)
        for j, x in enumerate(xs)
    ]


def _in_core(instances: Instances, tile: Tile) -> np.ndarray:
    cy = (instances.boxes[:, 0] + instances.boxes[:, 2]) / 2
    cx = (instances.boxes[:, 1] + instances.boxes[:, 3]) / 2
    y0, x0, y1, x1 = tile.core
    return (cy >= y0) & (cy < y1) & (cx >= x0) & (cx < x1)


def segment_tiled(
    image: np.ndarray,
    segment_tile: Callable[[np.ndarray], Instances],
    tile: int,
    overlap: int,
    progress: Callable[[int, int], None] | None = None,
    multiple: int = 1,
) -> Instances:
    """Run `segment_tile` on every tile of a 2D image and stitch the results."""
    tiles = plan_tiles(image.shape, tile, overlap, multiple)
    parts = []
    for index, t in enumerate(tiles):
        found = segment_tile(image[t.y0 : t.y1, t.x0 : t.x1]).shifted(t.y0, t.x0, image.shape)
        parts.append(found[np.flatnonzero(_in_core(found, t))])
        if progress is not None:
            progress(index + 1, len(tiles))
    if len(parts) == 1:
        return parts[0]
    # Only the seams hold duplicates: two cells one tile found are two cells, however much
    # they overlap (cells stacked in depth), as the method's own de-duplication decided.
    tile_of = np.concatenate([np.full(len(part), k) for k, part in enumerate(parts)]).astype(int)
    return merge_duplicates(Instances.concatenate(parts, shape=image.shape), groups=tile_of)

