"""Where the embryo is in a raw frame, classically: a circle fit of the zona pellucida, no model.

A time-lapse well view shows far more than the embryo: the bright crescent of the
culture well's rim, black beyond the illuminated field, vignetting, burned-in text,
debris and cumulus cells. What a segmentation model wants first is the window holding
the embryo and the space inside its zona, where every blastomere and fragment lies.

The zona is a thick, roughly circular shell around a textured interior (cells) on a
flat medium. `fit_zona` looks for that signature on a copy of the frame resized to
`WORK_SIDE` px:

1. edges of a locally contrast-normalised frame (so vignetting does not hide them) vote
   for circle centres along their gradient, both ways, weighted by 1/radius so that a
   circle's support does not grow with its size (a gradient-directed circular Hough, one
   accumulator per band of radii); the accumulator is padded so that a cut embryo's
   centre may lie outside the frame;
2. each centre peak is scored over radii by its radial profile: the share of the
   circumference with a radial edge (an intensity edge, or grain ending outwards), times
   how much more textured the disc is than the annulus just outside it (cells against
   medium; a well rim or the field stop encloses mostly flat medium), times whether no
   other concentric circle of edges lies just outside (the outer edge is the last one),
   times the presence of a second, concentric edge inside (the zona's inner boundary);
3. the best circle is polished to a fraction of a pixel (Nelder-Mead on its mean radial
   edge), and the inner radius is the strongest concentric boundary inside it, read on
   full-resolution rays.

Known limits are in the docstring of `fit_zona`.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import minimize
from skimage.feature import canny, peak_local_max
from skimage.transform import resize

from blastoseg.inference.embryo import Embryo
from blastoseg.inference.grey import unit_grey
from blastoseg.inference.radial import inner_radius, polar, range_max

WORK_SIDE = 256  # px of the longer side the search runs at: ~10 ms per map, rings still ~5 px thick
MIN_RADIUS = 0.08  # outer radius bounds, as fractions of the longer side: an embryo
MAX_RADIUS = 0.55  # 16 % of the frame across up to one cut by the frame edges
MIN_SCORE = 0.15  # below this no circle looks like a zona: the frame has no embryo
INNER_RANGE = (
    0.75,
    0.95,
)  # inner / outer radius of a human or mouse zona: 5 to 25 % of the radius thick
TEXTURE_STEP_WEIGHT = 0.5  # grain ending counts half a sharp edge: debris ends in grain as well
_N_CANDIDATES = 12  # circle centres scored, over all radius bands
_N_BANDS = 3
_N_ANGLES = 128


def fit_zona(frame: np.ndarray) -> Embryo | None:
    """The zona pellucida in a 2D grey frame (any dtype, any size; RGB is averaged), or None
    when nothing in it looks like one (a blank frame, a well without an embryo).

    A circle, not an ellipse. It can lock onto the culture well's inner disc when the zona's
    outer edge is faint and the embryo sits against the well wall (seen on real EmbryoScope
    views), and fails on embryos under ~30 px in radius; check `score` and the overlay."""
    grey = unit_grey(frame, "the zona fit")
    if grey is None:
        return None
    scale = max(grey.shape) / WORK_SIDE
    small_shape = (
        max(1, round(grey.shape[0] / scale)),
        max(1, round(grey.shape[1] / scale)),
    )
    if min(small_shape) < 16:
        return None
    small = resize(grey, small_shape, order=1, anti_aliasing=scale > 1, preserve_range=True).astype(np.float32)
    maps = _Maps(small)
    best = _best_circle(maps)
    if best is None or best[3] < MIN_SCORE:
        return None
    cy, cx, r, score = best
    cy, cx, r = _refine_circle(maps, cy, cx, r)
    # shrunk-frame pixel centres sit at (i + 0.5) * scale - 0.5 in the full frame
    centre = ((cy + 0.5) * scale - 0.5, (cx + 0.5) * scale - 0.5)
    radius = r * scale
    inner = inner_radius(grey, maps.valid, scale, centre, radius, inner_range=INNER_RANGE)
    return Embryo((float(centre[0]), float(centre[1])), float(radius), float(inner), float(score))


class _Maps:
    """Per-pixel maps of the shrunk frame that the circle search and its scoring read."""

    def __init__(self, small: np.ndarray) -> None:
        side = max(small.shape)
        self.shape = small.shape
        coarse = ndi.gaussian_filter(small, 3.0)
        # Black beyond the field is no evidence for or against an embryo, nor is the field
        # stop's blurred edge, a strong circle of its own: drop both (the margin is about
        # the width of a vignetted fall-off).
        black = ndi.binary_opening(coarse < 0.25 * np.percentile(coarse, 90), iterations=3)
        margin = max(3, round(0.03 * side))
        self.valid = ~ndi.binary_dilation(black, iterations=margin) if black.any() else np.ones(small.shape, bool)
        # Dividing by the neighbourhood's brightness keeps Hoffman and DIC edges as strong in
        # vignetted corners as in the centre.
        background = ndi.gaussian_filter(small, 0.06 * side)
        relative = small / (background + 0.1)
        smooth = ndi.gaussian_filter(relative, 1.0)
        self.gy = ndi.sobel(smooth, 0) / 8.0
        self.gx = ndi.sobel(smooth, 1) / 8.0
        magnitude = np.hypot(self.gy, self.gx)
        inside = magnitude[self.valid]
        self.gradient_scale = float(np.percentile(inside, 95)) if inside.size else 0.0
        self.edges = canny(
            relative,
            sigma=1.0,
            low_threshold=0.75,
            high_threshold=0.88,
            use_quantiles=True,
            mask=self.valid,
        )
        # Texture: the smaller eigenvalue of the local structure tensor. Grain (cytoplasm,
        # cumulus) has gradients in every direction; an edge, however strong (the well rim,
        # the field stop, the zona itself), in one only, and scores low.
        fine = ndi.gaussian_filter(small, 0.8)
        fy, fx = ndi.sobel(fine, 0) / 8.0, ndi.sobel(fine, 1) / 8.0
        jyy, jxx, jxy = (ndi.gaussian_filter(a, 3.0) for a in (fy * fy, fx * fx, fy * fx))
        spread = np.sqrt(((jxx - jyy) / 2.0) ** 2 + jxy**2)
        self.texture = np.sqrt(np.maximum((jxx + jyy) / 2.0 - spread, 0.0))
        tex = self.texture[self.valid]
        self.texture_floor = float(np.percentile(tex, 20)) if tex.size else 0.0
        # Where grain ends is a boundary too, often the only one a zona shows against the
        # medium when its edges are faint; on a log scale, so faint zona grain counts as
        # much as bright cytoplasm.
        log_texture = np.log(self.texture + self.texture_floor + 1e-6)
        smooth_texture = ndi.gaussian_filter(log_texture, 1.0)
        self.ty = ndi.sobel(smooth_texture, 0) / 8.0
        self.tx = ndi.sobel(smooth_texture, 1) / 8.0
        t_inside = np.hypot(self.ty, self.tx)[self.valid]
        self.texture_gradient_scale = float(np.percentile(t_inside, 95)) if t_inside.size else 0.0
        self.voters = [_voters(self.edges, self.gy, self.gx)]
        self.radii = np.arange(max(3, int(MIN_RADIUS * side)), int(MAX_RADIUS * side) + 1)


def _voters(edges: np.ndarray, gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    """(4, N) rows y, x, unit gradient y, x of the edge pixels."""
    ys, xs = np.nonzero(edges)
    vy, vx = gy[ys, xs], gx[ys, xs]
    norm = np.hypot(vy, vx)
    keep = norm > 0
    return np.stack([ys[keep], xs[keep], vy[keep] / norm[keep], vx[keep] / norm[keep]]).astype(np.float32)


def _centre_votes(maps: _Maps, radii: np.ndarray, smooth: float = 1.5) -> tuple[np.ndarray, int]:
    """Hough accumulator of circle centres (padded by `pad` px on every side), summed over
    `radii`; intensity and texture edges vote alike."""
    ys, xs, uy, ux = np.concatenate(maps.voters, axis=1)
    radii = radii.astype(np.float32)
    pad = int(0.4 * maps.radii[-1])
    h, w = maps.shape[0] + 2 * pad, maps.shape[1] + 2 * pad
    acc = np.zeros(h * w)
    weights = np.broadcast_to(1.0 / radii, (len(ys), len(radii))).ravel()
    for sign in (
        1.0,
        -1.0,
    ):  # relief contrast flips an edge's polarity around the circle
        cy = np.rint(ys[:, None] + pad + sign * uy[:, None] * radii).astype(np.int64).ravel()
        cx = np.rint(xs[:, None] + pad + sign * ux[:, None] * radii).astype(np.int64).ravel()
        ok = (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
        acc += np.bincount(cy[ok] * w + cx[ok], weights[ok], minlength=h * w)
    return ndi.gaussian_filter(acc.reshape(h, w), smooth), pad


def _best_circle(maps: _Maps) -> tuple[float, float, float, float] | None:
    """(cy, cx, r, score) in shrunk-frame px of the most zona-like circle, or None."""
    if maps.gradient_scale <= 0 or not maps.edges.any():  # nothing but flat grey
        return None
    # Centre peaks per band of radii, so that the many small circles of cells and debris
    # cannot crowd a larger zona's centre out of the candidates.
    peaks = []
    for band in np.array_split(maps.radii, _N_BANDS):
        acc, pad = _centre_votes(maps, band)
        for py, px in peak_local_max(
            acc,
            min_distance=4,
            threshold_rel=0.15,
            num_peaks=_N_CANDIDATES // _N_BANDS,
            exclude_border=False,
        ):
            if all(abs(py - qy) + abs(px - qx) > 2 for qy, qx in peaks):
                peaks.append((py, px))
    scored = sorted(
        (
            (
                *_score_radii(maps, float(py - pad), float(px - pad)),
                float(py - pad),
                float(px - pad),
            )
            for py, px in peaks
        ),
        reverse=True,
    )
    best = None
    # The summed accumulator blurs the zona's two edges and the cells' own centres
    # together; the leading candidates also try the centre that the votes of edges near
    # their own radius alone give.
    for score, r, cy, cx in scored[:3]:
        if best is None or score > best[3]:
            best = (cy, cx, r, score)
        ry, rx = _centre_for_radius(maps, cy, cx, r)
        score, r = _score_radii(maps, ry, rx)
        if score > best[3]:
            best = (ry, rx, r, score)
    return best


def _centre_for_radius(maps: _Maps, cy: float, cx: float, r: float) -> tuple[float, float]:
    """The Hough peak of edges within 8 % of radius `r`, searched within 0.1 r of (cy, cx)."""
    band = np.arange(max(2.0, 0.92 * r), 1.08 * r + 1.0)
    acc, pad = _centre_votes(maps, band, smooth=1.0)
    reach = max(2, int(0.1 * r))
    y0, x0 = round(cy) + pad - reach, round(cx) + pad - reach
    y0c, x0c = max(y0, 0), max(x0, 0)
    window = acc[y0c : y0 + 2 * reach + 1, x0c : x0 + 2 * reach + 1]
    if window.size == 0 or window.max() <= 0:
        return cy, cx
    iy, ix = np.unravel_index(int(np.argmax(window)), window.shape)
    return float(y0c + iy - pad), float(x0c + ix - pad)


def _score_radii(maps: _Maps, cy: float, cx: float) -> tuple[float, float]:
    """The most zona-like radius for a centre, and its score (see the module docstring, step 2)."""
    angles = np.linspace(0.0, 2.0 * np.pi, _N_ANGLES, endpoint=False)
    rs = np.arange(0.0, 1.5 * maps.radii[-1] + 2.0)
    valid = polar(maps.valid.astype(np.float32), cy, cx, rs, angles, order=0) > 0.5
    radial = np.abs(polar(maps.gx, cy, cx, rs, angles) * np.cos(angles) + polar(maps.gy, cy, cx, rs, angles) * np.sin(angles))
    edge = np.minimum(radial / maps.gradient_scale, 1.0)
    if maps.texture_gradient_scale > 0:
        # signed: only grain ending outwards (textured inside, flat outside) is a zona's edge
        texture_step = -(
            polar(maps.tx, cy, cx, rs, angles) * np.cos(angles) + polar(maps.ty, cy, cx, rs, angles) * np.sin(angles)
        )
        edge = np.maximum(
            edge,
            TEXTURE_STEP_WEIGHT * np.clip(texture_step / maps.texture_gradient_scale, 0.0, 1.0),
        )
    edge = ndi.maximum_filter1d(edge, 3, axis=0)  # +-1 px slack
    n_valid = valid.sum(1)
    coverage = (edge * valid).sum(1) / np.maximum(n_valid, 1)
    visible = n_valid / len(angles)
    radii = maps.radii.astype(float)
    at_radius = maps.radii

    # Texture inside against just outside: cells on medium, not medium inside a well rim.
    texture = np.where(valid, polar(maps.texture, cy, cx, rs, angles), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ring_texture = np.nanmedian(texture, axis=1)  # median per radius: a debris clump is a few angles
    has = np.isfinite(ring_texture)
    area = rs * n_valid  # polar samples thin out towards the centre: weigh rings by their area
    cum_w = np.concatenate([[0.0], np.cumsum(np.where(has, area, 0.0))])
    cum_t = np.concatenate([[0.0], np.cumsum(np.where(has, ring_texture * area, 0.0))])
    cum_full = np.concatenate([[0.0], np.cumsum(rs * len(angles))])

    def mean_texture(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo_i = np.clip(np.rint(lo).astype(int), 0, len(rs))
        hi_i = np.clip(np.rint(hi).astype(int), 0, len(rs))
        w = cum_w[hi_i] - cum_w[lo_i]
        share = w / np.maximum(cum_full[hi_i] - cum_full[lo_i], 1e-9)
        return (cum_t[hi_i] - cum_t[lo_i]) / np.maximum(w, 1e-9), share

    tex_in, share_in = mean_texture(0.15 * radii, 0.8 * radii)
    tex_out, share_out = mean_texture(1.1 * radii, 1.5 * radii)
    eps = 0.1 * maps.texture_floor + 1e-6
    contrast = np.log((tex_in + eps) / (tex_out + eps))
    textured = 1.0 / (1.0 + np.exp(-(contrast - 0.4) / 0.15))
    textured = np.where(share_out > 0.05, textured, 0.5)  # a tight crop shows no outside: no evidence

    # The zona's outer edge is the last concentric one: outside the zona's inner edge, a
    # cell cluster's outline or the well rim's inner edge lies another circle of edges,
    # outside the outer edge only medium. A circle of edges is one that more than half the
    # rays cross at the same radius (the median over rays), so debris, the crescent or the
    # field stop passing by do not count as one.
    cov_outer = coverage[at_radius]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nanmedian(np.where(valid, edge, np.nan), axis=1)
    trusted = np.where(visible >= 0.15, typical, -1.0)  # a handful of rays in a corner is noise
    beyond = range_max(
        trusted,
        np.rint(radii + np.maximum(3.0, 0.06 * radii)).astype(int),
        np.rint(1.35 * radii).astype(int) + 1,
    )
    at_edge = typical[at_radius]
    last = np.where(beyond >= 0, np.clip(1.0 - beyond / np.maximum(at_edge, 1e-9), 0.0, 1.0), 0.5)

    inner_peak = range_max(
        coverage,
        (INNER_RANGE[0] * radii).astype(int),
        (INNER_RANGE[1] * radii).astype(int) + 1,
    )
    ring = np.minimum(inner_peak / np.maximum(cov_outer, 1e-9), 1.0)
    seen = np.minimum(visible[at_radius] / 0.5, 1.0) * (share_in > 0.3)
    score = cov_outer * textured * (0.3 + 0.7 * last) * (0.25 + 0.75 * ring) * seen
    i = int(np.argmax(score))
    return float(score[i]), float(radii[i])


def _refine_circle(maps: _Maps, cy: float, cx: float, r: float) -> tuple[float, float, float]:
    """The circle near (cy, cx, r) with the strongest mean radial edge, to a fraction of a
    shrunk pixel (the Hough grid's step is a whole one). Only rays whose starting point is in
    the illuminated frame count, so the fit cannot drift to where there is nothing to see;
    a fit moving more than 5 % of r is not the same edge any more and is dropped."""
    angles = np.linspace(0.0, 2.0 * np.pi, _N_ANGLES, endpoint=False)
    seen = polar(maps.valid.astype(np.float32), cy, cx, np.array([r]), angles, order=0)[0] > 0.5
    if seen.sum() < 8:
        return cy, cx, r
    cos, sin = np.cos(angles[seen]), np.sin(angles[seen])

    def weak(p: np.ndarray) -> float:
        yy, xx = p[0] + p[2] * sin, p[1] + p[2] * cos
        gy = ndi.map_coordinates(maps.gy, [yy, xx], order=1, mode="nearest")
        gx = ndi.map_coordinates(maps.gx, [yy, xx], order=1, mode="nearest")
        return -float(np.mean(np.abs(gx * cos + gy * sin)))

    start = np.array([cy, cx, r])
    simplex = np.vstack([start, start + [1.0, 0, 0], start + [0, 1.0, 0], start + [0, 0, 1.0]])
    fit = minimize(
        weak,
        start,
        method="Nelder-Mead",
        options={
            "initial_simplex": simplex,
            "xatol": 0.05,
            "fatol": 1e-6,
            "maxiter": 200,
        },
    )
    y, x, rr = fit.x
    if np.hypot(y - cy, x - cx) > 0.05 * r or abs(rr - r) > 0.05 * r or fit.fun > weak(start):
        return cy, cx, r
    return float(y), float(x), float(rr)
