"""Where the embryo is, learned: a small U-Net maps a frame shrunk to `SIDE` px to two maps,
the zona with what it holds and the space inside it, and circles fitted to their outlines
give the `Embryo`.

Trained on synthetic acquisitions only (`blastoseg.training.zona`), so it has seen well
views with their bright crescent, cut and off-centre embryos, text, cumulus and JPEG in four
modalities; what tells a zona from the well's disc is the whole frame's layout, which a
network with a receptive field of the frame's size reads and a circle's edge score does not.
The shipped weights are `models/stages/zona.safetensors`.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from blastoseg.inference.embryo import Embryo
from blastoseg.inference.grey import unit_grey

if TYPE_CHECKING:
    from torch import nn

SIDE = 128  # px of the longer side the network sees: the zona's ring stays ~2 px thick
FORMAT = "blastoseg-stage-1"
NET = {"base": 16, "depth": 5, "full_res": 8}
MIN_AREA = 0.01  # of the network's frame: a smaller "embryo" is a speck of debris
MIN_SCORE = 0.5  # fitted disc / region IoU: below it the region is no circle, so no zona
EDGE = 1.5  # px of the network's frame: outline points this near the frame edge are left out


def shipped_path() -> Path:
    """The zona network shipped with blastoseg."""
    from blastoseg.catalogue import shipped_models_dir

    return shipped_models_dir() / "stages" / "zona.safetensors"


@dataclass(frozen=True)
class Shrunk:
    """A frame as the network sees it: `pixels` (SIDE, SIDE) float32, the frame occupying the
    top-left `shape` of it, each of those px `scale` (y, x) frame px."""

    pixels: np.ndarray
    shape: tuple[int, int]
    scale: tuple[float, float]


def shrink(frame: np.ndarray, order: int = 1) -> Shrunk:
    """The frame resized so its longer side is SIDE, zero-padded to a square. Grey frames
    are mapped 0.5-99.5 % to 0..1 (any bit depth); labels (`order=0`) are kept as they are."""
    from skimage.transform import resize

    a = np.asarray(frame)
    if order == 0 and a.ndim != 2:
        raise ValueError(f"the zona localiser wants 2D labels, got shape {a.shape}")
    grey = a if order == 0 else unit_grey(a, "the zona localiser")
    h, w = a.shape[:2]
    k = max(h, w) / SIDE
    shape = (max(1, min(SIDE, round(h / k))), max(1, min(SIDE, round(w / k))))
    if order == 0:
        small = resize(a, shape, order=0, preserve_range=True, anti_aliasing=False).astype(a.dtype)
    elif grey is None:  # no contrast: nothing to find
        small = np.zeros(shape, np.float32)
    else:
        small = resize(grey, shape, order=1, anti_aliasing=k > 1, preserve_range=True).astype(np.float32)
    pixels = np.zeros((SIDE, SIDE), small.dtype)
    pixels[: shape[0], : shape[1]] = small
    return Shrunk(pixels, shape, (h / shape[0], w / shape[1]))


def build_net() -> nn.Module:
    """The zona network, untrained."""
    from blastoseg.nets.unet import UNet

    return UNet(1, 2, **NET)


def load_net(path: str | os.PathLike | None = None, device: str = "cpu") -> nn.Module:
    """The zona network, eval mode, batch norm folded; `path` None is the shipped one.
    Loaded once per file version and device (a file written again is read again)."""
    path = Path(shipped_path() if path is None else path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no zona localiser at {path}; reinstall blastoseg (it ships in models/stages/)")
    return _load(str(path), path.stat().st_mtime_ns, device)


@functools.lru_cache(maxsize=4)
def _load(path: str, _version: int, device: str) -> nn.Module:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from blastoseg.nets.unet import fuse_batchnorm

    with safe_open(path, framework="pt") as handle:
        meta = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
    found = {k: meta.get(k) for k in ("format", "stage", "net", "side")}
    if found != {"format": FORMAT, "stage": "zona", "net": NET, "side": SIDE}:
        raise ValueError(f"{path} is not a zona localiser this blastoseg reads: it has {found}, "
                         f"expected format {FORMAT!r}, stage 'zona', net {NET}, side {SIDE}")
    net = build_net()
    net.load_state_dict(load_file(path))
    return fuse_batchnorm(net.eval()).to(device)


def zona_maps(frame: np.ndarray, net: nn.Module | None = None) -> tuple[np.ndarray, Shrunk]:
    """(2, h, w) probabilities at the shrunk frame's size: [0] inside the zona's outer edge,
    [1] inside its inner edge; and the `Shrunk` frame they belong to."""
    import torch

    net = load_net() if net is None else net
    shrunk = shrink(frame)
    device = next(net.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(shrunk.pixels)[None, None].to(device)
        p = torch.sigmoid(net(x))[0].float().cpu().numpy()
    h, w = shrunk.shape
    return p[:, :h, :w], shrunk


def predict_zona(frame: np.ndarray, net: nn.Module | None = None) -> Embryo | None:
    """The zona pellucida in a 2D frame as the network sees it, or None when it sees no embryo."""
    maps, shrunk = zona_maps(frame, net)
    fitted = fit_circles(maps[0], maps[1])
    if fitted is None:
        return None
    cy, cx, r_out, r_in, score = fitted
    sy, sx = shrunk.scale
    # shrunk-frame px centres sit at (i + 0.5) * scale - 0.5 in the full frame
    centre = ((cy + 0.5) * sy - 0.5, (cx + 0.5) * sx - 0.5)
    s = 0.5 * (sy + sx)
    return Embryo((float(centre[0]), float(centre[1])), float(r_out * s), float(r_in * s), float(score))


def fit_circles(outer: np.ndarray, inner: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """(cy, cx, outer radius, inner radius, score) of the zona whose probability maps these
    are, in their px; None when no region is large enough to be an embryo, or round
    enough (`MIN_SCORE`) to be a zona.

    The outer circle is fitted (RANSAC, so a cumulus clump stuck to the zona does not pull it)
    to the outline of the most probable region, leaving out where the frame edge cuts it;
    the inner radius is the median distance of the inner outline from that centre. The
    score is the fitted disc's overlap (IoU) with the region: 1 for a clean circle."""
    from skimage.measure import CircleModel, ransac

    h, w = outer.shape
    region = outer > 0.5
    labels, n = ndi.label(region)
    if n == 0:
        return None
    mass = ndi.sum(outer, labels, index=np.arange(1, n + 1))
    best = int(np.argmax(mass)) + 1
    region = labels == best
    if region.sum() < MIN_AREA * h * w:
        return None
    near = ndi.binary_dilation(region, iterations=2)
    points = _outline(np.where(near, outer, 0.0))
    fit = None
    if len(points) >= 12:
        model, _ = ransac(points, CircleModel, min_samples=3, residual_threshold=1.5, max_trials=200, rng=0)
        if model:  # a failed estimate is falsy
            fit = (float(model.center[0]), float(model.center[1]), float(model.radius))
    if fit is None or not (0 < fit[2] < 2 * max(h, w)):  # too little outline: the region's own size
        cy, cx = ndi.center_of_mass(region)
        fit = (float(cy), float(cx), float(np.sqrt(region.sum() / np.pi)))
    cy, cx, r_out = fit
    inner_points = _outline(np.where(near, inner, 0.0))
    if len(inner_points):
        r_in = float(np.median(np.hypot(inner_points[:, 0] - cy, inner_points[:, 1] - cx)))
    else:
        r_in = 0.85 * r_out  # no inner outline seen: a typical human zona, 15 % of the radius thick
    r_in = float(np.clip(r_in, 0.5 * r_out, 0.98 * r_out))
    yy, xx = np.ogrid[:h, :w]
    disc = np.hypot(yy - cy, xx - cx) <= r_out
    score = float((disc & region).sum() / max((disc | region).sum(), 1))
    if score < MIN_SCORE:
        return None
    return cy, cx, r_out, r_in, score


def _outline(probability: np.ndarray) -> np.ndarray:
    """(N, 2) sub-pixel points of the 0.5 contour, those on the frame's edge left out (there
    the frame, not the zona, ends the region)."""
    from skimage.measure import find_contours

    padded = np.pad(probability, 1)  # closes contours of regions cut by the frame edge
    contours = find_contours(padded, 0.5)
    if not contours:
        return np.zeros((0, 2))
    points = np.concatenate(contours) - 1.0
    h, w = probability.shape
    lo, hi_y, hi_x = EDGE - 1.0, h - EDGE, w - EDGE
    keep = (points[:, 0] > lo) & (points[:, 1] > lo) & (points[:, 0] < hi_y) & (points[:, 1] < hi_x)
    return points[keep]
