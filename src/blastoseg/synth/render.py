"""Image formation for the synthetic embryos: optical path -> Hoffman relief / brightfield -> camera.

The embryo is drawn as two maps: an optical path length (pixels of "height": cell
thickness, membranes, granules, zona, fragments) whose directional derivative is the
Hoffman modulation contrast relief, and an absorption map for the brightfield part.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from blastoseg.synth.acquisition import Acquisition
from blastoseg.synth.bodies import add_sphere, harmonics
from blastoseg.synth.scene import Embryo


@dataclass(frozen=True)
class Style:
    """Optics and camera of one acquisition (shared by all frames of a time-lapse)."""

    bg: float
    grad: tuple[float, float]
    vignette: float
    light: float  # shading direction (radians)
    gain: float  # relief contrast
    w_cell: float  # weight of cell thickness in the optical path
    w_mem: float  # membrane ridge height (px)
    tau: float  # how much of a cell shows through each cell in front of it
    w_tex: float  # cytoplasm granule amplitude (px)
    tex_sigma: float
    beta_cell: float  # absorption of a full-thickness cell
    beta_zona: float
    zona_h: float  # zona band height (px)
    zona_grad: float  # zona brightness change from inner to outer edge
    zona_tex: float
    w_frag: float
    psf: float
    focus: float  # focal plane height / r_in
    dof: float  # cells farther than dof * r_in from focus go to the blurred layer
    dof_sigma: float
    halo: float
    photons: float
    read_noise: float
    contrast: float
    brightness: float
    gamma: float
    debris: np.ndarray  # (k, 4) specks on the dish: y, x (fractions of the image), radius, sign
    waves: np.ndarray  # (3, 5) uneven illumination: y and x frequency, y and x phase, amplitude
    well: tuple[float, float] | None  # rim of the culture well: direction, radius; or None
    saturation: float = 3.0  # relief at which the contrast modulator saturates

    @classmethod
    def sample(cls, rng: np.random.Generator, r_in: float, modality: str | None = None) -> Style:
        """Optics for a modality of `acquisition.MODALITIES`; None draws the classic mix of
        Hoffman contrast (3 in 4) and brightfield, with no acquisition effects."""
        u = rng.uniform
        # else plain brightfield: weak relief, more absorption/halo
        hmc = rng.random() < 0.75 if modality is None else modality != "brightfield"
        scale = max(r_in / 90, 0.6)
        k = int(rng.poisson(3))
        style = cls(
            bg=u(0.35, 0.65),
            grad=tuple(rng.normal(0, 0.06, 2)),
            vignette=u(0, 0.45),
            light=u(0, 2 * np.pi),
            gain=u(0.05, 0.14) if hmc else u(0.01, 0.04),
            w_cell=u(0.25, 0.8),
            w_mem=u(1.0, 3.5),
            tau=u(0.35, 0.75),
            w_tex=u(0.4, 1.3),
            tex_sigma=u(0.6, 1.1) * min(max(scale, 0.8), 1.6),
            beta_cell=u(-0.05, 0.15) if hmc else u(0.08, 0.3),
            beta_zona=u(-0.15, 0.15),
            zona_h=u(2.0, 6.0),
            zona_grad=u(-0.8, 0.8),
            zona_tex=u(0.1, 0.5),
            w_frag=u(0.6, 1.2),
            psf=u(0.5, 1.2),
            focus=u(-0.3, 0.3),
            dof=u(0.25, 0.8),
            dof_sigma=u(1.0, 2.5) * scale,
            halo=u(0.0, 0.04) if hmc else u(0.03, 0.1),
            photons=float(np.exp(u(np.log(300), np.log(5000)))),
            read_noise=u(0.002, 0.012),
            contrast=u(0.75, 1.3),
            brightness=u(-0.08, 0.08),
            gamma=u(0.8, 1.25),
            debris=np.column_stack([rng.random((k, 2)), u(0.8, 3.0, k), rng.choice([-1.0, 1.0], k)]),
            waves=np.column_stack([u(0.5, 2.5, (3, 2)), u(0, 2 * np.pi, (3, 2)), rng.normal(0, 0.02, 3)]),
            well=(u(0, 2 * np.pi), u(1.8, 2.2)) if rng.random() < 0.1 else None,
        )
        if modality is None:
            return style
        style = replace(style, well=None)  # the acquisition's well replaces the corner shadow
        if modality == "strong_hoffman":  # steep relief, cells almost clear
            return replace(style, gain=u(0.14, 0.3), beta_cell=u(-0.05, 0.06), saturation=u(1.5, 3.0))
        if modality == "dic":  # linear shear relief, no halo; mouse embryos: thick bright zona
            return replace(style, gain=u(0.1, 0.25), beta_cell=u(-0.02, 0.04), halo=0.0, saturation=100.0,
                           w_mem=u(0.5, 2.0), zona_h=u(4.0, 9.0), psf=u(0.6, 1.5))
        return style


def _zona_coordinates(emb: Embryo, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rn, thick): rn is 1 on the zona's inner edge, 1 + thick on its outer edge."""
    a = emb.zona_mat.astype(np.float32)
    rn = np.sqrt(a[0, 0] * yy * yy + 2 * a[0, 1] * yy * xx + a[1, 1] * xx * xx)
    thick = np.float32(emb.zona_thick / emb.r_in) * (1 + harmonics(yy, xx, emb.zona_wig.astype(np.float32)))
    return rn, thick


def zona_truth(emb: Embryo, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) coded as `inference.embryo.zona_labels`: 1 on the zona, 2 inside it."""
    oy, ox = emb.origin
    yy = np.arange(shape[0], dtype=np.float32)[:, None] - np.float32(oy)
    xx = np.arange(shape[1], dtype=np.float32)[None, :] - np.float32(ox)
    rn, thick = _zona_coordinates(emb, yy, xx)
    labels = np.zeros(shape, np.uint8)
    labels[rn <= 1 + thick] = 1
    labels[rn <= 1] = 2
    return labels


def _zona(emb: Embryo, style: Style, yy: np.ndarray, xx: np.ndarray, tex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optical path and absorption of the zona pellucida band."""
    rn, thick = _zona_coordinates(emb, yy, xx)
    edge_in = np.clip((rn - 1) * emb.r_in + 0.5, 0, 1)
    edge_out = np.clip((1 + thick - rn) * emb.r_in + 0.5, 0, 1)
    band = edge_in * edge_out
    across = np.clip((rn - 1) / thick, 0, 1) - 0.5
    profile = band * (1 + style.zona_grad * across + style.zona_tex * tex)
    return style.zona_h * profile, style.beta_zona * profile


def render(
    emb: Embryo,
    bodies: list,
    centers: np.ndarray,
    order: np.ndarray,
    frags: np.ndarray,
    style: Style,
    shape: tuple[int, int],
    rng: np.random.Generator,
    acquisition: Acquisition | None = None,
    dish_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, fragment mask) of an embryo whose cells are `bodies`, drawn in `order`,
    seen as `acquisition` frames it (or as a clean crop); `dish_only`: the same view with
    no embryo in it, only what lies around it (a well before or after the embryo)."""
    h, w = shape
    oy, ox = emb.origin
    yy = np.arange(h, dtype=np.float32)[:, None] - np.float32(oy)
    xx = np.arange(w, dtype=np.float32)[None, :] - np.float32(ox)
    tex = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), style.tex_sigma)
    tex *= 2 * np.sqrt(np.pi) * style.tex_sigma  # unit variance whatever the granule size
    if dish_only:
        path, absorb = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    else:
        path, absorb = _zona(emb, style, yy, xx, tex)
    blurred = np.zeros(shape, np.float32)  # optical path of out-of-focus cells
    cover = np.zeros(shape, np.int16)  # number of nearer cells over each pixel
    smooth = np.ones(shape, np.float32)  # 0 where nuclei hide the granules
    radii = emb.r_cells * emb.vol ** (1 / 3)
    for k in order:
        (y0, x0, y1, x1), t = bodies[k]
        inside = t > 0
        if not inside.any():
            continue
        shade = style.tau ** cover[y0:y1, x0:x1]
        edge = inside & ~ndimage.binary_erosion(inside, border_value=1)
        sharp = abs(centers[k, 2] / emb.r_in - style.focus) < style.dof
        layer = path if sharp else blurred
        layer[y0:y1, x0:x1] += shade * (style.w_cell * t + style.w_mem * edge)
        absorb[y0:y1, x0:x1] += shade * style.beta_cell * t / (2 * emb.r_cells)
        cy, cx = centers[k, 0] + oy, centers[k, 1] + ox
        front = 0 <= int(cy) < h and 0 <= int(cx) < w and cover[int(cy), int(cx)] == 0
        if sharp and front and emb.nucleus[k]:
            look = np.random.default_rng(int(emb.nucleus[k]))  # the same nucleus in every frame
            _nucleus(path, smooth, cy, cx, radii[k], len(order) == 1, style, look)
        cover[y0:y1, x0:x1] += inside
    path += style.w_tex * tex * (cover > 0) * smooth
    frag_mask = np.zeros(shape, bool)
    for dy, dx, r, sign in frags:
        add_sphere(path, dy + oy, dx + ox, r, sign * style.w_frag, frag_mask)
        add_sphere(absorb, dy + oy, dx + ox, r, 0.5 * abs(style.beta_cell) / r)
    for fy, fx, r, sign in style.debris:  # specks on the dish, outside the zona
        if np.hypot(fy * h - oy, fx * w - ox) > emb.r_in + emb.zona_thick * 1.5:
            add_sphere(path, fy * h, fx * w, r, sign)
    if acquisition is None:
        return _camera(path, blurred, absorb, style, rng), frag_mask
    acquisition.draw_dish(path, absorb, (oy, ox), emb.r_in + emb.zona_thick, rng)
    well = acquisition.well.light(shape) if acquisition.well is not None else None
    style = replace(style, psf=float(np.hypot(style.psf, acquisition.blur)))
    image = _camera(path, blurred, absorb, style, rng, well)
    return acquisition.finish(image, rng), frag_mask


def _nucleus(
    path: np.ndarray, smooth: np.ndarray, cy: float, cx: float, r_cell: float, zygote: bool,
    style: Style, rng: np.random.Generator,
) -> None:
    """A nucleus (or the zygote's two pronuclei): smooth, slightly sunken, with nucleoli."""
    if zygote:
        r = r_cell * rng.uniform(0.17, 0.22)
        a = rng.uniform(0, np.pi)
        centres = [(cy + s * 0.95 * r * np.sin(a), cx + s * 0.95 * r * np.cos(a)) for s in (-1, 1)]
    else:
        r = r_cell * rng.uniform(0.22, 0.32)
        centres = [(cy + rng.normal(0, 0.15 * r_cell), cx + rng.normal(0, 0.15 * r_cell))]
    for ny, nx in centres:
        y0, x0 = max(int(ny - r) - 2, 0), max(int(nx - r) - 2, 0)
        y1, x1 = min(int(ny + r) + 3, path.shape[0]), min(int(nx + r) + 3, path.shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        d = np.hypot(np.arange(y0, y1)[:, None] - ny, np.arange(x0, x1)[None, :] - nx)
        smooth[y0:y1, x0:x1] *= np.clip(d - r + 0.5, 0.15, 1)
        path[y0:y1, x0:x1] += style.w_mem * 0.6 * np.exp(-0.5 * (d - r) ** 2)
        add_sphere(path, ny, nx, r, -0.15 * style.w_cell)
        for _ in range(int(rng.integers(1, 5 if zygote else 3))):
            off = rng.uniform(0, 0.6 * r)
            ang = rng.uniform(0, 2 * np.pi)
            add_sphere(path, ny + off * np.sin(ang), nx + off * np.cos(ang), max(0.12 * r, 1.0), 0.8)


def _camera(
    path: np.ndarray, blurred: np.ndarray, absorb: np.ndarray, style: Style, rng: np.random.Generator,
    well: np.ndarray | None = None,
) -> np.ndarray:
    """Optics blur; relief + absorption + halo under uneven light; sensor noise and gain."""
    h, w = path.shape
    path = ndimage.gaussian_filter(path, style.psf)
    if blurred.any():
        path += ndimage.gaussian_filter(blurred, style.dof_sigma)
    gy, gx = np.gradient(path)
    relief = np.cos(style.light) * gx + np.sin(style.light) * gy
    relief = style.saturation * np.tanh(relief / style.saturation)  # Hoffman's modulator saturates on steep edges
    halo = path - ndimage.gaussian_filter(path, 3.0, truncate=2.5)
    absorb = ndimage.gaussian_filter(absorb, style.psf)
    iy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    ix = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    light = style.bg * (1 + style.grad[0] * iy + style.grad[1] * ix)
    wave = style.waves.astype(np.float32)
    low = sum(a * np.cos(fy * iy + py) * np.cos(fx * ix + px) for fy, fx, py, px, a in wave)
    light = light * (1 + low) * (1 - style.vignette * 0.5 * (iy * iy + ix * ix))
    if style.well is not None:  # the rim of the culture well darkens one corner
        a, radius = style.well
        dist = np.hypot(iy - 2.6 * np.sin(a), ix - 2.6 * np.cos(a)) - radius
        light = light * (0.35 + 0.65 / (1 + np.exp(-dist * 25)))
    if well is not None:
        light = light * well
    img = light * (1 - absorb) + style.gain * relief + style.halo * halo
    img = np.clip(img, 0, None)
    # Shot noise (Gaussian approximation of Poisson at these photon counts) and read noise.
    sd = np.sqrt(img / style.photons + style.read_noise**2)
    img = img + sd * rng.standard_normal(img.shape, dtype=np.float32)
    img = (img - style.bg) * style.contrast + style.bg + style.brightness
    img = np.clip(img, 0, 1) ** style.gamma
    return img.astype(np.float32)
