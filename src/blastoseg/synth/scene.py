"""What a synthetic frame is made of: the sample handed out and the embryo drawn in it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blastoseg.instances import Instances

Seed = int | np.random.Generator | None


def as_rng(seed: Seed) -> np.random.Generator:
    return np.random.default_rng(seed)


@dataclass(frozen=True)
class Sample:
    """One synthetic image and its ground truth.

    image: (H, W) float32 in [0, 1]; instances: amodal masks with depth (0 = front-most),
    scores all 1; fragments: (H, W) bool mask of cytoplasmic fragments and polar bodies,
    which are NOT instances; classes: per-instance class for `synth_shapes`, else None;
    zona: (H, W) uint8, 1 on the zona pellucida and 2 inside it, for embryos, else None.
    """

    image: np.ndarray
    instances: Instances
    fragments: np.ndarray
    classes: np.ndarray | None = None
    zona: np.ndarray | None = None


@dataclass(frozen=True)
class Embryo:
    """Geometry of one embryo; coordinates (y, x, z) in pixels from the embryo centre."""

    origin: tuple[float, float]
    r_in: float  # zona inner radius (mean)
    zona_thick: float
    zona_mat: np.ndarray  # inner zona ellipsoid, p^T A p <= 1
    zona_wig: np.ndarray  # (k, 3) harmonics of the zona thickness
    r_cells: float  # radius of a sphere holding all cytoplasm
    pos: np.ndarray  # (n, 3) cell centres
    vol: np.ndarray  # (n,) volume fractions
    spin: np.ndarray  # (n, 3) orientation hint of each cell's frame
    jit: np.ndarray  # (n, 3) axis jitter factors
    wig: np.ndarray  # (n, k, 3) outline harmonics (m, amplitude, phase)
    nucleus: np.ndarray  # (n,) 0 = no nucleus shown, else the seed of its look
    overlap: float
    confine: float
    frags: np.ndarray  # (k, 4) fragment candidates: dy, dx, radius, relief sign
