"""The 8 dihedral transforms (D4) for images and for raw output maps.

Transform g (0..7) = optional flip of the last axis (g >= 4), then g % 4 quarter turns
(`torch.rot90`, dims (-2, -1)). Scalar maps move with the pixels. A 2-vector field
(dy, dx) is also turned and flipped as a vector, and a pair of per-axis maps
(sy, sx) swaps under quarter turns. Works on torch tensors (..., C, H, W), through
`numpy_*` on numpy arrays, and through `transform_instances` on `Instances`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from blastoseg.instances import Instances

N_TRANSFORMS = 8


@dataclass(frozen=True)
class FieldLayout:
    """Which channels of a raw map are vectors or per-axis pairs; all others are scalars."""

    vectors: Sequence[tuple[int, int]] = field(default_factory=tuple)  # (dy channel, dx channel)
    axis_pairs: Sequence[tuple[int, int]] = field(default_factory=tuple)  # (y channel, x channel)


def _steps(g: int) -> list[str]:
    if not 0 <= g < N_TRANSFORMS:
        raise ValueError(f"D4 transform index must be 0..7; got {g}")
    return (["flip"] if g >= 4 else []) + ["rot"] * (g % 4)


def _apply(x: torch.Tensor, step: str, layout: FieldLayout | None, inverse: bool) -> torch.Tensor:
    if step == "flip":
        x = torch.flip(x, dims=(-1,))
        if layout is not None:
            x = x.clone()
            for _, cx in layout.vectors:
                x[..., cx, :, :] = -x[..., cx, :, :]
        return x
    # np.rot90 semantics: pixel (y, x) of an H x W map goes to (W-1-x, y), so a
    # displacement (dy, dx) becomes (-dx, dy); the inverse turn maps it to (dx, -dy).
    x = torch.rot90(x, k=-1 if inverse else 1, dims=(-2, -1))
    if layout is None:
        return x
    x = x.clone()
    for cy, cx in layout.vectors:
        dy, dx = x[..., cy, :, :].clone(), x[..., cx, :, :].clone()
        x[..., cy, :, :], x[..., cx, :, :] = (dx, -dy) if inverse else (-dx, dy)
    for cy, cx in layout.axis_pairs:
        sy, sx = x[..., cy, :, :].clone(), x[..., cx, :, :].clone()
        x[..., cy, :, :], x[..., cx, :, :] = sx, sy
    return x


def transform(x: torch.Tensor, g: int, layout: FieldLayout | None = None) -> torch.Tensor:
    """Apply D4 element g to a (..., C, H, W) tensor; with `layout`, vector channels turn too."""
    for step in _steps(g):
        x = _apply(x, step, layout, inverse=False)
    return x


def inverse(x: torch.Tensor, g: int, layout: FieldLayout | None = None) -> torch.Tensor:
    """Undo `transform(., g, layout)`."""
    for step in reversed(_steps(g)):
        x = _apply(x, step, layout, inverse=True)
    return x


def numpy_transform(a: np.ndarray, g: int) -> np.ndarray:
    """D4 element g on the last two axes of a numpy array (scalar data, e.g. images, labels)."""
    for step in _steps(g):
        a = np.flip(a, -1) if step == "flip" else np.rot90(a, 1, axes=(-2, -1))
    return np.ascontiguousarray(a)


def numpy_inverse(a: np.ndarray, g: int) -> np.ndarray:
    for step in reversed(_steps(g)):
        a = np.flip(a, -1) if step == "flip" else np.rot90(a, -1, axes=(-2, -1))
    return np.ascontiguousarray(a)


def transform_instances(instances: Instances, g: int) -> Instances:
    """Apply D4 element g (as `transform`) to instances: masks move, boxes follow exactly."""
    h, w = instances.shape
    boxes = instances.boxes.astype(np.int64).copy()
    shape = (h, w)
    for step in _steps(g):
        y0, x0, y1, x1 = boxes.T.copy()
        if step == "flip":
            boxes = np.stack([y0, shape[1] - x1, y1, shape[1] - x0], 1)
        else:  # (y, x) -> (W-1-x, y)
            boxes = np.stack([shape[1] - x1, y0, shape[1] - x0, y1], 1)
            shape = (shape[1], shape[0])
    masks = tuple(numpy_transform(m, g) for m in instances.masks)
    return Instances(shape, boxes, masks, instances.scores, instances.depth, instances.classes)
