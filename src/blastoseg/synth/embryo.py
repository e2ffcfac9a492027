"""Synthetic training data with exact amodal ground truth.

`synth_embryo` renders a Hoffman-modulation-contrast / brightfield look-alike of an IVF
embryo: 1-16 blastomeres are 3D bodies (ellipsoids squeezed into the zona, flattened
where they touch) whose vertical projections are the amodal masks, so overlaps, depth
order and visible parts all follow from one geometry. `synth_timelapse` cleaves one such
embryo over frames. The bodies' geometry lives in `bodies`, image formation in `render`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from blastoseg.instances import Instances
from blastoseg.synth.acquisition import Acquisition
from blastoseg.synth.bodies import (
    ellipsoid_matrix,
    project_body,
    radial_frame,
    relax,
    separating_planes,
)
from blastoseg.synth.render import Style, render, zona_truth
from blastoseg.synth.scene import Embryo, Sample, Seed, as_rng

# (lowest, highest cell count, weight): development stages seen in time-lapse imaging.
_STAGES = ((1, 1, 0.12), (2, 2, 0.15), (3, 3, 0.10), (4, 4, 0.15), (5, 8, 0.26), (9, 16, 0.22))


def _sample_n(rng: np.random.Generator) -> int:
    w = np.array([s[2] for s in _STAGES])
    lo, hi, _ = _STAGES[rng.choice(len(_STAGES), p=w / w.sum())]
    return int(rng.integers(lo, hi + 1))


def _cell_params(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    spin = rng.normal(size=(n, 3))
    jit = np.exp(rng.normal(0, [0.05, 0.07, 0.07], size=(n, 3)))
    m = np.broadcast_to(np.array([2.0, 3.0, 4.0]), (n, 3))
    wig = np.stack([m, rng.uniform(0, 0.025, (n, 3)), rng.uniform(0, 2 * np.pi, (n, 3))], -1)
    nucleus = np.where(rng.random(n) < 0.45, rng.integers(1, 2**31, n), 0)
    return {"spin": spin, "jit": jit, "wig": wig, "nucleus": nucleus}


def _divide(emb: Embryo, k: int, rng: np.random.Generator) -> Embryo:
    """Split cell k in two along a random axis; the daughters start inside the mother."""
    f = float(np.clip(rng.normal(0.5, 0.05), 0.3, 0.7))
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    r = emb.r_cells * emb.vol[k] ** (1 / 3)
    kids = emb.pos[k] + np.outer([1 - f, -f], axis) * r
    new = _cell_params(rng, 2)
    keep = np.arange(len(emb.vol)) != k

    def cat(old: np.ndarray, add: np.ndarray) -> np.ndarray:
        return np.concatenate([old[keep], add])

    return replace(
        emb,
        pos=cat(emb.pos, kids),
        vol=cat(emb.vol, emb.vol[k] * np.array([f, 1 - f])),
        spin=cat(emb.spin, new["spin"]),
        jit=cat(emb.jit, new["jit"]),
        wig=cat(emb.wig, new["wig"]),
        nucleus=cat(emb.nucleus, new["nucleus"]),
    )


def _settle(emb: Embryo, iters: int = 60) -> Embryo:
    radii = emb.r_cells * emb.vol ** (1 / 3)
    return replace(emb, pos=relax(emb.pos, radii, emb.r_in, emb.overlap, emb.confine, iters))


def _fragment_candidates(rng: np.random.Generator, r_in: float, r_cells: float) -> np.ndarray:
    """Candidate fragments (dy, dx, radius, sign); those that land on a cell are dropped."""
    grade = rng.choice(3, p=[0.35, 0.4, 0.25])  # none, few, many (most candidates get dropped)
    n = int((0, rng.integers(3, 16), rng.integers(25, 100))[grade])
    if rng.random() < 0.5 and n:  # clustered fragmentation
        centre = rng.uniform(-0.7, 0.7, 2) * r_in
        yx = centre + rng.normal(0, 0.25 * r_in, (n, 2))
    else:
        ang, rad = rng.uniform(0, 2 * np.pi, n), r_in * np.sqrt(rng.uniform(0, 1, n))
        yx = np.stack([rad * np.sin(ang), rad * np.cos(ang)], 1)
    radius = r_cells * rng.uniform(0.025, 0.09, n)
    # Polar bodies: one or two larger spheres pressed against the zona.
    n_pb = int(rng.choice(3, p=[0.4, 0.4, 0.2]))
    ang = rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.3, n_pb)
    pb_r = r_cells * rng.uniform(0.09, 0.15, n_pb)
    pb = np.stack([(r_in - pb_r - 1) * np.sin(ang), (r_in - pb_r - 1) * np.cos(ang)], 1)
    yx = np.concatenate([pb, yx.reshape(-1, 2)])
    radius = np.maximum(np.concatenate([pb_r, radius]), 1.2)
    sign = np.where(rng.random(len(radius)) < 0.8, 1.0, -1.0)
    return np.column_stack([yx, radius, sign])


def _new_embryo(
    shape: tuple[int, int], n: int, rng: np.random.Generator, diameter: tuple[float, float],
    centre: tuple[float, float] | None = None,
) -> Embryo:
    side = min(shape)
    r_out = rng.uniform(*diameter) * side / 2
    zona_thick = r_out * rng.uniform(0.08, 0.18)
    r_in = r_out - zona_thick
    if centre is None:  # near the middle, whole
        room = max(0.0, min(side / 2 - r_in - 2, 0.5 * (side / 2 - r_out) + 0.05 * r_out))
        origin = (shape[0] / 2 + rng.uniform(-room, room), shape[1] / 2 + rng.uniform(-room, room))
    else:
        origin = (float(centre[0]), float(centre[1]))
    e, a = rng.uniform(0, 0.06), rng.uniform(0, np.pi)
    frame = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    zona_mat = ellipsoid_matrix(r_in * np.array([1 + e, 1 - e, 1]), frame)
    zona_wig = np.stack([[1.0, 2.0, 3.0], rng.uniform(0, 0.12, 3), rng.uniform(0, 2 * np.pi, 3)], 1)
    r_cells = r_in * rng.uniform(0.8, 0.95)
    vol = [1.0]
    while len(vol) < n:  # cleavage history: the biggest cell divides next, unevenly
        v = vol.pop(int(np.argmax(vol)))
        f = float(np.clip(rng.normal(0.5, 0.06), 0.3, 0.7))
        vol += [v * f, v * (1 - f)]
    vol = np.array(vol) * np.exp(rng.normal(0, rng.uniform(0, 0.15), n))
    pos = rng.normal(size=(n, 3)) * 0.4 * r_in
    pos[:, 2] *= 0.7  # start flatter than a ball so early stages lie side by side more often
    emb = Embryo(
        origin, r_in, zona_thick, zona_mat, zona_wig, r_cells, pos if n > 1 else pos * 0.1,
        vol / vol.sum(), overlap=rng.uniform(0.05, 0.2), confine=rng.uniform(0.55, 0.75),
        frags=_fragment_candidates(rng, r_in, r_cells), **_cell_params(rng, n),
    )
    return _settle(emb)


def _bodies(emb: Embryo, shape: tuple[int, int]) -> tuple[list, np.ndarray]:
    """(box, optical thickness) of each cell and the centres of their bodies.

    A packed sphere becomes an ellipsoid spanning radially from where its neighbours
    press on it to the zona wall, widened sideways to keep its volume; neighbours then
    cut it along shared planes and the zona cuts whatever still pokes out.
    """
    n = len(emb.vol)
    radii = emb.r_cells * emb.vol ** (1 / 3)
    mats, bounds, centers = np.zeros((n, 3, 3)), np.zeros(n), emb.pos.copy()
    for k in range(n if n > 1 else 0):
        r, rho = radii[k], float(np.linalg.norm(emb.pos[k]))
        u = emb.pos[k] / rho if rho > 0.05 * r else np.array([0.0, 0.0, 1.0])
        outer, inner = min(rho + r, 1.02 * emb.r_in), rho - r * (1 - emb.overlap)
        a_r = max((outer - inner) / 2, 0.45 * r)
        centers[k] = u * (outer + inner) / 2
        room = np.sqrt(max(emb.r_in**2 - ((outer + inner) / 2) ** 2, 0))
        a_t = min(np.sqrt(r**3 / a_r), max(1.05 * room, 0.7 * r))
        axes = np.array([a_r, a_t, a_t]) * emb.jit[k]
        mats[k] = ellipsoid_matrix(axes, radial_frame(u, emb.spin[k]))
        bounds[k] = axes.max() * (1 + np.abs(emb.wig[k, :, 1]).sum())
    if n == 1:
        axes = radii[0] * emb.jit[0]
        mats[0] = ellipsoid_matrix(axes, radial_frame(np.array([0.0, 0.0, 1.0]), emb.spin[0]))
        bounds[0] = axes.max() * (1 + np.abs(emb.wig[0, :, 1]).sum())
    planes = separating_planes(centers, mats, bounds)
    out = []
    for k in range(n):
        body = project_body(centers[k], mats[k], bounds[k], emb.wig[k], planes[k], emb.zona_mat, emb.origin, shape)
        out.append(body if body is not None else ((0, 0, 1, 1), np.zeros((1, 1))))
    return out, centers


def _free_fragments(emb: Embryo, bodies: list, shape: tuple[int, int]) -> np.ndarray:
    """The fragment candidates lying wholly inside the zona's cavity and off every cell."""
    if not len(emb.frags):
        return emb.frags
    # Only a window around the zona matters: the candidates and all cell boxes lie in it.
    reach = emb.r_in * 1.1 + 3
    boxes = np.array([b[0] for b in bodies])
    wy0 = max(min(int(emb.origin[0] - reach), boxes[:, 0].min()), 0)
    wx0 = max(min(int(emb.origin[1] - reach), boxes[:, 1].min()), 0)
    wy1 = min(max(int(emb.origin[0] + reach) + 1, boxes[:, 2].max()), shape[0])
    wx1 = min(max(int(emb.origin[1] + reach) + 1, boxes[:, 3].max()), shape[1])
    yy = np.arange(wy0, wy1)[:, None] - emb.origin[0]
    xx = np.arange(wx0, wx1)[None, :] - emb.origin[1]
    a = emb.zona_mat
    occupied = a[0, 0] * yy * yy + 2 * a[0, 1] * yy * xx + a[1, 1] * xx * xx >= 1  # outside the zona's cavity
    for (y0, x0, y1, x1), t in bodies:
        occupied[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] |= t > 0
    occupied[[0, -1], :] = True  # keeps fragments off the image border too
    occupied[:, [0, -1]] = True
    free_dist = ndimage.distance_transform_edt(~occupied)
    y = np.rint(emb.frags[:, 0] + emb.origin[0]).astype(int)
    x = np.rint(emb.frags[:, 1] + emb.origin[1]).astype(int)
    inside = (y >= wy0) & (y < wy1) & (x >= wx0) & (x < wx1)
    ok = np.zeros(len(y), bool)
    ok[inside] = free_dist[y[inside] - wy0, x[inside] - wx0] > emb.frags[inside, 2] + 1.5
    frags = emb.frags[ok].copy()
    frags[:, :2] = np.column_stack([y[ok], x[ok]]) - np.array(emb.origin)
    return frags


# A cell cut by the frame down to a sliver this small (px) is not annotated: nobody could.
_MIN_CUT_AREA = 30


def _sample(emb: Embryo, style: Style, shape: tuple[int, int], rng: np.random.Generator, acquisition: Acquisition | None = None) -> Sample:
    bodies, centers = _bodies(emb, shape)
    # Bodies never overlap in 3D and each close pair is split by a plane across the line
    # joining their centres, so the higher centre is in front along every line of sight.
    order = np.argsort(-centers[:, 2], kind="stable")
    depth = np.empty(len(order), np.int32)
    depth[order] = np.arange(len(order))
    frags = _free_fragments(emb, bodies, shape)
    image, frag_mask = render(emb, bodies, centers, order, frags, style, shape, rng, acquisition)
    masks = [(b[0], b[1] > 0) for b in bodies]
    if acquisition is not None:  # cut embryos: drop what the frame leaves of a cell as a sliver
        kept = [k for k, (_, m) in enumerate(masks) if m.sum() >= _MIN_CUT_AREA]
        masks = [masks[k] for k in kept]
        depth = np.argsort(np.argsort(depth[kept])).astype(np.int32)
    inst = Instances.from_masks(shape, masks, depth=depth)
    return Sample(image, inst, frag_mask, zona=zona_truth(emb, shape))


def synth_embryo(
    shape: tuple[int, int] = (256, 256),
    n_cells: int | None = None,
    seed: Seed = None,
    diameter: tuple[float, float] = (0.4, 0.95),
    acquisition: Acquisition | bool = False,
) -> Sample:
    """One synthetic embryo image with exact amodal blastomere masks.

    n_cells: 1-16, or None to draw a stage (weighted toward 1, 2, 3, 4, 5-8, 9-16 cells).
    diameter: range of the zona's outer diameter as a fraction of the shorter image side.
    acquisition: False for a clean, centred crop; True to draw how an instrument frames
    and sees it (well views, cut and off-centre embryos, text, debris, JPEG, several
    modalities; `diameter` is then the acquisition's); or a given `Acquisition`. Cells
    that a cut embryo leaves outside the frame are not in the truth, so the count may
    fall below `n_cells`.
    """
    rng = as_rng(seed)
    n = _sample_n(rng) if n_cells is None else int(n_cells)
    if not 1 <= n <= 16:
        raise ValueError(f"n_cells must be in 1..16, got {n}")
    acq = Acquisition.sample(rng, shape) if acquisition is True else (acquisition or None)
    if acq is None:
        emb = _new_embryo(shape, n, rng, diameter)
        return _sample(emb, Style.sample(rng, emb.r_in), shape, rng)
    emb = _new_embryo(shape, n, rng, (acq.fill, acq.fill), acq.centre)
    return _sample(emb, Style.sample(rng, emb.r_in, acq.modality), shape, rng, acq)


def synth_dish(shape: tuple[int, int] = (256, 256), seed: Seed = None) -> Sample:
    """An acquisition with no embryo in it (a well before the embryo was placed, or after it
    was moved): the well, cumulus, debris, text and noise, and empty truth."""
    rng = as_rng(seed)
    acq = Acquisition.sample(rng, shape)
    emb = _new_embryo(shape, 1, rng, (acq.fill, acq.fill), acq.centre)  # not drawn: the dish keeps clear of it
    style = Style.sample(rng, emb.r_in, acq.modality)
    image, _ = render(emb, [], np.zeros((0, 3)), np.zeros(0, int), np.zeros((0, 4)), style, shape, rng, acq, dish_only=True)
    empty = np.zeros(shape, bool)
    return Sample(image, Instances.from_masks(shape, []), empty, zona=np.zeros(shape, np.uint8))


def cleavage_counts(n_frames: int, final: int, rng: np.random.Generator) -> np.ndarray:
    """Non-decreasing cell counts, 1 at frame 0, reaching `final` by the last frame.

    Divisions come in rounds (1 -> 2, 2 -> 4, 4 -> 8, ...) spread over the clip; the
    cells of one round divide a little out of step, so 3, 5, 6 or 7 cells show up too.
    """
    event = np.arange(1, final)
    rounds = np.floor(np.log2(event))
    n_rounds = rounds.max() + 1
    slot = (n_frames - 1) / n_rounds
    start = (rounds + rng.uniform(0.05, 0.45, int(n_rounds))[rounds.astype(int)]) * slot
    times = np.clip(np.sort(0.5 + start + rng.uniform(0, 0.5, len(event)) * slot), 0.5, n_frames - 1)
    return 1 + np.searchsorted(times, np.arange(n_frames), side="right")


def synth_timelapse(
    n_frames: int = 12,
    shape: tuple[int, int] = (256, 256),
    seed: Seed = None,
    final_cells: int = 8,
    diameter: tuple[float, float] = (0.5, 0.95),
    acquisition: Acquisition | bool = False,
) -> list[Sample]:
    """A cleaving embryo (1 -> 2 -> 3/4 -> ... -> `final_cells`) seen by one fixed camera.

    Clips shorter than the cleavage story stop earlier (at most 2**(n_frames - 1) cells).

    Zona, optics and illumination are shared by all frames; cells drift slightly between
    frames and each division splits one of the largest cells. `acquisition` is as for
    `synth_embryo`; its time stamp advances frame by frame.
    """
    if not 1 <= final_cells <= 16:
        raise ValueError(f"final_cells must be in 1..16, got {final_cells}")
    rng = as_rng(seed)
    acq = Acquisition.sample(rng, shape) if acquisition is True else (acquisition or None)
    if acq is None:
        emb = _new_embryo(shape, 1, rng, diameter)
        style = Style.sample(rng, emb.r_in)
    else:
        emb = _new_embryo(shape, 1, rng, (acq.fill, acq.fill), acq.centre)
        style = Style.sample(rng, emb.r_in, acq.modality)
    # A short clip cannot show every round: at most one division round per frame.
    final = min(final_cells, 2 ** (n_frames - 1))
    counts = cleavage_counts(n_frames, final, rng) if final > 1 else np.ones(n_frames, int)
    frames = []
    for index, count in enumerate(counts):
        while len(emb.vol) < count:
            big = np.flatnonzero(emb.vol >= emb.vol.max() * 0.75)
            emb = _divide(emb, int(rng.choice(big)), rng)
        jitter = rng.normal(0, 0.02 * emb.r_cells, emb.pos.shape)
        emb = _settle(replace(emb, pos=emb.pos + jitter), iters=40)
        frames.append(_sample(emb, style, shape, rng, acq.at_frame(index) if acq else None))
    return frames
