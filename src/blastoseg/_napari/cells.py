"""Cells across frames and on screen: numbers that follow a cell over time, the outlines an
overview draws, and the cells worth a second look. Nothing here imports napari."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from blastoseg.instances import Instances


def number_cells(frames: Sequence[Instances], min_iou: float = 0.3, gap: int = 2) -> list[list[int]]:
    """A number for every cell of every frame: a cell keeps the number of the cell it
    overlaps most (IoU >= `min_iou`, one to one) among those seen in the last `gap` + 1
    frames; others get new numbers, in index order. One frame: cell i is i + 1.

    When a cell divides, the daughter that overlaps it most keeps its number.
    """
    from scipy.optimize import linear_sum_assignment

    numbers: list[list[int]] = []
    last: dict[int, tuple[int, Instances]] = {}  # number -> (frame last seen, its mask there)
    following = 1
    for t, inst in enumerate(frames):
        ids = [0] * len(inst)
        alive = [(k, m) for k, (seen, m) in last.items() if t - seen <= gap + 1]
        if alive and len(inst):
            iou = inst.iou(Instances.concatenate([m for _, m in alive], shape=inst.shape))
            for row, col in zip(*linear_sum_assignment(-iou)):
                if iou[row, col] >= min_iou:
                    ids[row] = alive[col][0]
        for i in range(len(inst)):
            if ids[i] == 0:
                ids[i], following = following, following + 1
        for i, k in enumerate(ids):
            last[k] = (t, inst[[i]])
        numbers.append(ids)
    return numbers


# ---------------------------------------------------------------------- overview
def outline_width(shape: Sequence[int]) -> int:
    """Outline thickness in pixels: 1 up to ~450 px frames, 3 at 800 px."""
    return max(1, round(max(shape[-2:]) / 300))


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of `mask` within `width` of its edge (also along the image border)."""
    inner = ndimage.binary_erosion(np.pad(mask, 1), iterations=width)[1:-1, 1:-1]
    return mask & ~inner


def draw_overview(out: np.ndarray, cells: Iterable[tuple[int, float, np.ndarray]], width: int) -> np.ndarray:
    """Paint the outlines of `cells` (number, depth, full (H, W) mask) into the label image
    `out`, back to front so that a nearer cell's outline wins where two cross."""
    for number, _, mask in sorted(cells, key=lambda c: -c[1]):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            continue
        y0, y1, x0, x1 = max(rows[0] - 1, 0), rows[-1] + 2, max(cols[0] - 1, 0), cols[-1] + 2
        edge = _outline(mask[y0:y1, x0:x1], width)
        out[y0:y1, x0:x1][edge] = number
    return out


@dataclass(frozen=True)
class Flag:
    """A cell to look at: frame, number, confidence and why."""

    frame: int
    cell: int
    confidence: float
    reason: str


def review(frames: Sequence[Instances], numbers: Sequence[Sequence[int]], below: float,
           zona_area: Sequence[float | None] | None = None) -> list[Flag]:
    """Cells to check, least confident first: confidence under `below`, and where a frame has
    at least three cells, a cell larger than half the space inside the zona (when
    known) or than 3x the frame's median cell area. With one or two cells a blastomere
    can fill half the zona or more."""
    flags = []
    for t, (inst, ids) in enumerate(zip(frames, numbers)):
        areas = inst.areas()
        median = float(np.median(areas)) if len(areas) else 0.0
        inside = zona_area[t] if zona_area is not None and t < len(zona_area) else None
        for i, k in enumerate(ids):
            reasons = []
            if inst.scores[i] < below:
                reasons.append(f"confidence {inst.scores[i]:.2f}")
            if len(inst) >= 3:
                if inside and areas[i] > 0.5 * inside:
                    reasons.append(f"{areas[i] / inside:.0%} of the zona")
                elif areas[i] > 3 * median:
                    reasons.append(f"{areas[i] / median:.1f}x the median area")
            if reasons:
                flags.append(Flag(t, int(k), float(inst.scores[i]), ", ".join(reasons)))
    return sorted(flags, key=lambda f: (f.confidence, f.frame, f.cell))
