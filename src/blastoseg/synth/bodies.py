"""3D blastomere bodies: ellipsoids squeezed into the zona, flattened where they touch.

Their vertical projections are the synthetic embryos' exact amodal masks, so overlaps,
depth order and visible parts all follow from one geometry.
"""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------- 3D cell bodies
def z_interval(
    A: np.ndarray, dy: np.ndarray, dx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the vertical line through (dy, dx) meets the ellipsoid p^T A p <= 1.

    Returns (lo, hi, hit); lo/hi are z offsets from the ellipsoid's centre.
    """
    b = A[0, 2] * dy + A[1, 2] * dx
    c = A[0, 0] * dy * dy + 2 * A[0, 1] * dy * dx + A[1, 1] * dx * dx - 1
    disc = b * b - A[2, 2] * c
    hit = disc > 0
    root = np.sqrt(np.maximum(disc, 0))
    return (-b - root) / A[2, 2], (-b + root) / A[2, 2], hit


def ellipsoid_matrix(axes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """A with p^T A p <= 1 for semi-axes `axes` along the columns of `frame`."""
    return (frame / axes**2) @ frame.T


def radial_frame(u: np.ndarray, spin: np.ndarray) -> np.ndarray:
    """Orthonormal (3, 3) frame whose first column is u and second lies towards `spin`."""
    v = spin - spin @ u * u
    v /= np.linalg.norm(v) + 1e-12
    return np.stack([u, v, np.cross(u, v)], axis=1)


def relax(
    pos: np.ndarray,
    radii: np.ndarray,
    r_in: float,
    overlap: float,
    confine: float,
    iters: int = 60,
) -> np.ndarray:
    """Push spheres apart (allowing `overlap` of their radii) and into a ball of r_in."""
    pos = pos.copy()
    vol = radii**3
    share = vol[None, :] / (vol[:, None] + vol[None, :])  # the lighter cell moves more
    target = (radii[:, None] + radii[None, :]) * (1 - overlap)
    limit = np.maximum(r_in - confine * radii, 0.0)
    for _ in range(iters):
        diff = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((diff**2).sum(-1)) + np.eye(len(pos))
        push = np.clip(target - dist, 0, None)
        np.fill_diagonal(push, 0)
        pos += 0.5 * ((push * share / dist)[..., None] * diff).sum(1)
        norm = np.linalg.norm(pos, axis=1)
        over = norm > limit
        pos[over] *= (limit[over] / np.maximum(norm[over], 1e-9))[:, None]
    return pos


def separating_planes(centers: np.ndarray, mats: np.ndarray, bounds: np.ndarray) -> list[list]:
    """Per cell, the half-spaces n.p <= d that keep it out of every nearby cell.

    Each close pair shares one plane across the centre line, placed like the radical
    plane of two spheres with the cells' radii along that line: touching cells get a
    flat contact face, and the bodies never overlap in 3D, so the centre-height order is
    exactly the front-to-back order along every line of sight.
    """
    n = len(centers)
    planes: list[list] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            d_vec = centers[j] - centers[i]
            d = float(np.linalg.norm(d_vec))
            if d >= bounds[i] + bounds[j] or d < 1e-6:
                continue
            u = d_vec / d
            ri, rj = 1 / np.sqrt(u @ mats[i] @ u), 1 / np.sqrt(u @ mats[j] @ u)
            x = np.clip((d * d + ri * ri - rj * rj) / (2 * d), 0.2 * d, 0.8 * d)
            off = float(u @ centers[i] + x)
            planes[i].append((u, off))
            planes[j].append((-u, -off))
    return planes


def harmonics(dy: np.ndarray, dx: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """sum of amp * cos(m * theta + phase) over rows (m, amp, phase), theta = atan2(dy, dx).

    Built from cos/sin of theta by the angle-addition recurrence: no trigonometric
    function is evaluated per pixel.
    """
    r = np.hypot(dy, dx)
    r = np.where(r > 0, r, 1)
    c1, s1 = dx / r, dy / r
    out = np.zeros(np.broadcast_shapes(dy.shape, dx.shape), dtype=np.result_type(dy, dx))
    cm, sm = c1, s1
    for m in range(1, int(max(terms[:, 0])) + 1):
        for mm, amp, ph in terms:
            if int(mm) == m and amp:
                out += amp * (cm * np.cos(ph) - sm * np.sin(ph))
        cm, sm = cm * c1 - sm * s1, sm * c1 + cm * s1
    return out


def project_body(
    center: np.ndarray,
    mat: np.ndarray,
    bound: float,
    wiggle: np.ndarray,
    planes: list,
    zona_mat: np.ndarray,
    origin: tuple[float, float],
    shape: tuple[int, int],
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Box and vertical optical thickness (0 outside) of one cell body in the image.

    The body is {ellipsoid, radially wiggled} & zona inner ellipsoid & its half-spaces;
    coordinates are (y, x, z) relative to the embryo centre at image point `origin`.
    wiggle rows are (harmonic m, amplitude, phase) of a star-shaped outline perturbation.
    """
    oy, ox = origin
    y0 = max(int(np.floor(oy + center[0] - bound)) - 1, 0)
    x0 = max(int(np.floor(ox + center[1] - bound)) - 1, 0)
    y1 = min(int(np.ceil(oy + center[0] + bound)) + 2, shape[0])
    x1 = min(int(np.ceil(ox + center[1] + bound)) + 2, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    yy = (np.arange(y0, y1, dtype=np.float64) - oy)[:, None]
    xx = (np.arange(x0, x1, dtype=np.float64) - ox)[None, :]
    dy, dx = yy - center[0], xx - center[1]
    if len(wiggle):
        scale = 1 + harmonics(dy, dx, wiggle)
        dy, dx = dy / scale, dx / scale
    lo, hi, hit = z_interval(mat, dy, dx)
    lo, hi = lo + center[2], hi + center[2]
    zlo, zhi, zhit = z_interval(zona_mat, yy, xx)
    lo, hi, hit = np.maximum(lo, zlo), np.minimum(hi, zhi), hit & zhit
    for normal, off in planes:
        rhs = off - normal[0] * yy - normal[1] * xx
        if normal[2] > 1e-9:
            hi = np.minimum(hi, rhs / normal[2])
        elif normal[2] < -1e-9:
            lo = np.maximum(lo, rhs / normal[2])
        else:
            hit = hit & (rhs >= 0)
    thick = hi - lo
    # Tangent contacts leave rounding-level slivers; they are not part of the body.
    thick = np.where(hit & (thick > 1e-6), thick, 0.0)
    return (y0, x0, y1, x1), thick


def add_sphere(
    path: np.ndarray, cy: float, cx: float, r: float, height: float, mask: np.ndarray | None = None
) -> None:
    """Add the projected thickness of a sphere of radius r (optical path `height` per unit thickness) at (cy, cx)."""
    y0, x0 = max(int(cy - r) - 1, 0), max(int(cx - r) - 1, 0)
    y1, x1 = min(int(cy + r) + 3, path.shape[0]), min(int(cx + r) + 3, path.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    d2 = (np.arange(y0, y1)[:, None] - cy) ** 2 + (np.arange(x0, x1)[None, :] - cx) ** 2
    path[y0:y1, x0:x1] += height * 2 * np.sqrt(np.clip(r * r - d2, 0, None))
    if mask is not None:
        mask[y0:y1, x0:x1] |= d2 <= r * r
