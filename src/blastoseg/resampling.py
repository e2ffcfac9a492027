"""Enlarging a boolean mask with a smooth outline (used by `Instances.resized(smooth=True)`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# Gaussian blur (in the mask's own pixels) before enlarging. A mask found at a working size
# has an outline that steps by one of its pixels: bilinear sampling alone turns each step
# into a notch the size of the scale factor, and round cells measured circularity 0.068
# too low on synthetic acquisitions (0.087 on the real frames). 1.5 px took that error to
# 0.022 (2 px: 0.020); a wider blur rounds off more of the corners of cells pressed together
# (docs/experiments.md, "Crowded embryos, smoother outlines, ...").
OUTLINE_SIGMA = 1.5


def enlarged(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, sigma: float = OUTLINE_SIGMA) -> np.ndarray:
    """`mask` smoothed by a Gaussian of `sigma` of its pixels, sampled bilinearly at rows
    `ys` x columns `xs` (its own pixel-centre coordinates, fractional) and thresholded at
    0.5: the outline passes between inside and outside pixel centres, following the
    shape's course instead of its pixel steps. Outside the mask counts as background."""
    padded = np.pad(mask.astype(np.float32), 1)  # a ring of background: edges fall off between centres
    if sigma > 0:
        padded = ndi.gaussian_filter(padded, sigma, mode="constant", cval=0.0)
    return _bilinear(padded, np.asarray(ys) + 1, np.asarray(xs) + 1) >= 0.5


def _bilinear(values: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """`values` sampled bilinearly on the grid ys x xs (array coordinates, clamped to the array)."""

    def weights(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        coords = np.clip(coords, 0, n - 1)
        low = np.minimum(np.floor(coords).astype(np.intp), max(n - 2, 0))
        return low, np.minimum(low + 1, n - 1), (coords - low).astype(np.float32)

    r0, r1, wy = weights(ys, values.shape[0])
    c0, c1, wx = weights(xs, values.shape[1])
    top = values[r0][:, c0] * (1 - wx) + values[r0][:, c1] * wx
    bottom = values[r1][:, c0] * (1 - wx) + values[r1][:, c1] * wx
    return top * (1 - wy)[:, None] + bottom * wy[:, None]
