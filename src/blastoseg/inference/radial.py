"""Radial profiles around a centre, for fitting concentric boundaries such as the zona's."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import hilbert


def polar(
    image: np.ndarray,
    cy: float,
    cx: float,
    radii: np.ndarray,
    angles: np.ndarray,
    order: int = 1,
) -> np.ndarray:
    """`image` sampled on rays from (cy, cx): (len(radii), len(angles)), 0 outside the frame."""
    yy = cy + radii[:, None] * np.sin(angles)[None, :]
    xx = cx + radii[:, None] * np.cos(angles)[None, :]
    return ndi.map_coordinates(image, [yy, xx], order=order, mode="constant", cval=0.0)


def range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo[i]:hi[i]]) along axis 0 for every i at once (a sparse table of maxima);
    an empty range gives the smallest value."""
    n = len(values)
    lo = np.clip(lo, 0, n - 1)
    hi = np.clip(np.maximum(hi, lo + 1), 1, n)
    levels = [values]
    while 2 ** len(levels) <= n:
        prev, half = levels[-1], 2 ** (len(levels) - 1)
        levels.append(np.maximum(prev[:-half], prev[half:]))
    k = np.floor(np.log2(hi - lo)).astype(int)
    out = np.empty((len(lo),) + values.shape[1:], values.dtype)
    for level in np.unique(k):
        sel = k == level
        table = levels[level]
        out[sel] = np.maximum(table[lo[sel]], table[hi[sel] - 2**level])
    return out


def inner_radius(
    grey: np.ndarray,
    valid: np.ndarray,
    scale: float,
    centre: tuple[float, float],
    radius: float,
    inner_range: tuple[float, float] = (0.75, 0.95),
) -> float:
    """The strongest boundary concentric with the outer one, inside it: the zona's inner edge.

    Along full-resolution rays, the local energy (band-pass with its Hilbert partner) peaks on
    a boundary whether it shows as a line (relief contrast, brightfield) or as a step; each ray
    is normalised first, so a few rays crossing bright cell outlines do not outvote the faint
    but complete inner ring, which alone is concentric."""
    n_angles = int(np.clip(2 * np.pi * radius / 4, 90, 720))
    angles = np.linspace(0.0, 2.0 * np.pi, n_angles, endpoint=False)
    step = 0.5
    rs = np.arange(0.45 * radius, radius + 0.5 * step, step)
    cy, cx = centre
    profile = polar(grey, cy, cx, rs, angles)
    yy = (cy + rs[:, None] * np.sin(angles)) / scale - 0.5 + 0.5 / scale
    xx = (cx + rs[:, None] * np.cos(angles)) / scale - 0.5 + 0.5 / scale
    inside = ndi.map_coordinates(valid.astype(np.float32), [yy, xx], order=0, mode="constant", cval=0.0) > 0.5
    sigma = max(1.0, 0.8 * scale) / step  # about one shrunk pixel: finer is JPEG and noise
    band = ndi.gaussian_filter1d(profile, sigma, axis=0) - ndi.gaussian_filter1d(profile, 2.5 * sigma, axis=0)
    energy = np.abs(hilbert(band, axis=0))
    search = (rs >= inner_range[0] * radius) & (rs <= min(inner_range[1] * radius, radius - 3.0 * sigma * step))
    usable = inside[search].all(0)
    if usable.sum() < 12:
        usable = inside[search].any(0)
    if not usable.any() or not search.any():
        return float(np.mean(inner_range) * radius)
    e = energy[search][:, usable]
    e = e / np.maximum(e.max(0, keepdims=True), 1e-9)
    return float(rs[search][int(np.argmax(e.mean(1)))])
