"""Instance centres for spatial-embedding targets: the medoid (EmbedSeg) or the centroid.

The medoid is the object pixel with the smallest summed distance to all others. It is
exact for small instances; for large ones (blastomeres have tens of thousands of
pixels) it is taken among the pixels nearest the geometric median, scored against a
fixed subsample, so no N x N distance matrix is ever built.
"""

from __future__ import annotations

import numpy as np

from blastoseg.instances import Instances

EXACT_LIMIT = 2048  # pixels; above this the approximation is used
_CANDIDATES = 256
_SUBSAMPLE = 4096


def _summed_distances(candidates: np.ndarray, points: np.ndarray, chunk: int = 256) -> np.ndarray:
    out = np.empty(len(candidates))
    for start in range(0, len(candidates), chunk):
        c = candidates[start : start + chunk]
        out[start : start + chunk] = np.sqrt(((c[:, None, :] - points[None, :, :]) ** 2).sum(-1)).sum(1)
    return out


def geometric_median(points: np.ndarray, iterations: int = 64, tol: float = 1e-3) -> np.ndarray:
    """Weiszfeld's algorithm."""
    estimate = points.mean(0)
    for _ in range(iterations):
        dist = np.maximum(np.sqrt(((points - estimate) ** 2).sum(1)), 1e-6)
        new = (points / dist[:, None]).sum(0) / (1 / dist).sum()
        if np.abs(new - estimate).max() < tol:
            return new
        estimate = new
    return estimate


def medoid(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates -> the medoid's coordinates (exact up to EXACT_LIMIT points)."""
    points = np.asarray(points, np.float64)
    if len(points) <= EXACT_LIMIT:
        return points[np.argmin(_summed_distances(points, points))]
    centre = geometric_median(points)
    nearest = np.argsort(((points - centre) ** 2).sum(1))[:_CANDIDATES]
    sample = np.random.default_rng(seed).choice(len(points), min(_SUBSAMPLE, len(points)), replace=False)
    return points[nearest[np.argmin(_summed_distances(points[nearest], points[sample]))]]


def instance_centres(instances: Instances, mode: str = "medoid") -> np.ndarray:
    """(N, 2) float (y, x) centre of each instance: "medoid" or "centroid"."""
    centres = np.zeros((len(instances), 2))
    for i, (box, mask) in enumerate(zip(instances.boxes, instances.masks)):
        points = np.argwhere(mask) + box[:2]
        if mode == "medoid":
            centres[i] = medoid(points)
        elif mode == "centroid":
            centres[i] = points.mean(0)
        else:
            raise ValueError(f"unknown centre {mode!r}; choose 'medoid' or 'centroid'")
    return centres
