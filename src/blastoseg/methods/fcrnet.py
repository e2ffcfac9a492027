"""FCRNet (Cao & Yan 2021, seed 003): instances as a four-colouring of the image.

Each pixel gets K non-negative scores e = softplus(raw), made near one-hot by the power
normalisation h_k = e_k^alpha / sum_j e_j^alpha; alpha rises over training following
`alpha_schedule` (one stage per equal share of the budget; the training loop reports
its progress through `on_progress`) and inference uses the last value. The loss needs
no colouring of the ground truth, it is invariant to permuting the colours:
1 - cos(pixel, mean of its instance), plus `w_inter` x |cos| between the means of
adjacent instances (within a dilation radius of `adjacency_scale` x the median object
radius, measured on the augmented crop). Inference: argmax, connected components of
each colour (one labelling pass), then a minimum size.

Background: the paper's network has K outputs and no foreground channel, so the
background is one of the K colours, an instance adjacent to every cell. The paper does
not say how inference tells it from the cells, so colour 0 is pinned to it by one extra
term, the log loss of h_0 against the background mask; the other K - 1 colours stay free
(permutation invariant) for the cells.

Deviations from the paper, measured on DSB2018 greyscale (3-CPU-minute runs, 58 test
images, no TTA; benchmarks/fcrnet_dsb.py):
- `w_inter` = 1. The paper weighs neither term (its intra term sums over pixel pairs,
  so it dominates); with 4 x inter the network lowers the neighbours' cosine by painting
  parts of cells in other colours: validation AP@0.5 fell from 0.57 to 0.33 as training
  went on, and a 15-minute run left 2,320 false positives, 976 under 30 pixels.
- The pin is weighted as U-Net's loss (the paper's network): background pixels between
  two nuclei weigh 1 + `separation_weight` exp(-(d1 + d2)^2 / 2 `separation_sigma`^2),
  d1, d2 the distances to the two nearest. In short runs the cosine terms do not break
  the symmetry between touching cells (its gradient vanishes when two means are equal,
  and a colour that has lost everywhere gets none through the saturated h): all cells
  end up in one colour (280 of the 295 touching test pairs share it), so nuclei are
  told apart by the background between them, and the weights make the network keep
  that gap (AJI 0.62 -> 0.67, PQ 0.58 -> 0.63; merged nuclei 515 -> 380 of 1,916).
- `min_size` 16 (the benchmark used 8): fragments under 16 pixels are false positives.
- Optional (`w_colour` > 0): a fixed colouring of the truth to follow, as in FCIS (Zhang
  et al., ICML 2025), since the paper's terms alone do not break the symmetry between
  touching cells in our budgets. Cells are visited in an order the network can read
  (`colour_order`: front to back for blastomeres, whose depth shows in the image, or
  top to bottom for nuclei), each taking the lowest colour its touching (2 px) neighbours
  lack; the log loss of each cell pixel's colour is added, its weight falling to 0 over
  `colour_fade` so that the paper's loss has the last word. On DSB (30 minutes) touching
  pairs sharing a colour fell from 496 to 238 of 507 and merges from 542 to 280; the
  pieces of nuclei painted in two colours that it leaves are removed by instance
  consensus over the TTA views (`fcrnet-nuclei`: AJI / PQ 0.699 / 0.664 -> 0.741 / 0.702).

TTA: cell colours may permute between views, so they are never averaged. With
`tta: "affinity"` the maps carry the co-assignment affinity a(i, j) = sum_k h_k(i) h_k(j)
of each pixel to its 4-neighbours, which is permutation invariant and a D4 field, so the
views are averaged ("fields") and foreground pixels (h_0 < 0.5) are joined across edges
of affinity > `affinity_threshold`. With `tta: "instances"` each view is post-processed
and `consensus` merges them (the default of a new model); `predict` asks
`tta_merge_for(config)` which rule applies (`predict.merge_views`). FCRNet is
modal: it segments what is visible.

Activated channels: 0-3 affinities as (D - U, R - L, D + U, R + L), R(y, x) being the
affinity of (y, x) to (y, x + 1) and 0 off the map (a vector and an axis pair under D4);
4 the background colour h_0; 5.. the K - 1 cell colours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from skimage.measure import label as label_regions
from torch.nn import functional as F

from blastoseg.d4 import FieldLayout
from blastoseg.instances import Instances
from blastoseg.methods.base import Config, DenseMethod
from blastoseg.nets import build_net

N_AFFINITY = 4  # activated channels before the colours


def power_logits(raw: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha log e with e = softplus(raw) > 0: the softmax of these is the power normalisation."""
    return alpha * torch.log(F.softplus(raw) + 1e-6)


def power_normalise(raw: torch.Tensor, alpha: float, dim: int = 1) -> torch.Tensor:
    """h_k = e_k^alpha / sum_j e_j^alpha with e = softplus(raw) > 0, in log space for stability."""
    return torch.softmax(power_logits(raw, alpha), dim=dim)


def neighbour_affinities(h: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) colours -> (B, 4, H, W): D - U, R - L, D + U, R + L (0 across the border)."""
    right = (h[..., :, :-1] * h[..., :, 1:]).sum(-3)
    down = (h[..., :-1, :] * h[..., 1:, :]).sum(-3)
    r, left = F.pad(right, (0, 1)), F.pad(right, (1, 0))
    d, up = F.pad(down, (0, 0, 0, 1)), F.pad(down, (0, 0, 1, 0))
    return torch.stack([d - up, r - left, d + up, r + left], -3)


def alpha_at(config: Config, fraction: float) -> float:
    """The schedule's alpha at a fraction of the training budget (equal stages)."""
    schedule = list(config["alpha_schedule"])
    return float(schedule[min(int(fraction * len(schedule)), len(schedule) - 1)])


def adjacency(labels: np.ndarray, radius: int) -> np.ndarray:
    """(E, 2) label pairs i < j (both > 0) whose regions come within `radius` pixels."""
    h, w = labels.shape
    pairs = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        y0, y1 = max(sl[0].start - radius, 0), min(sl[0].stop + radius, h)
        x0, x1 = max(sl[1].start - radius, 0), min(sl[1].stop + radius, w)
        window = labels[y0:y1, x0:x1]
        # A distance transform is O(pixels), unlike a dilation by a large disk.
        near = np.unique(window[ndimage.distance_transform_edt(window != k) <= radius])
        pairs.extend((k, int(j)) for j in near[near > k])
    return np.array(pairs, np.int64).reshape(-1, 2)


def object_radius(labels: np.ndarray, config: Config) -> int:
    """Adjacency radius: `adjacency_scale` x the median equivalent radius, clipped."""
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    median = float(np.median(np.sqrt(areas / np.pi))) if areas.size else 0.0
    return int(np.clip(round(config["adjacency_scale"] * median), config["adjacency_min"], config["adjacency_max"]))


def separation_weights(labels: np.ndarray, weight: float, sigma: float) -> np.ndarray:
    """U-Net's pixel weights: 1, plus weight x exp(-(d1 + d2)^2 / 2 sigma^2) on background
    pixels within 3 sigma of two objects, d1 and d2 the distances to the nearest two."""
    out = np.ones(labels.shape, np.float32)
    if weight <= 0 or labels.max() < 2:
        return out
    reach = int(np.ceil(3 * sigma))
    d1 = np.full(labels.shape, np.inf, np.float32)
    d2 = np.full(labels.shape, np.inf, np.float32)
    h, w = labels.shape
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        window = (slice(max(sl[0].start - reach, 0), min(sl[0].stop + reach, h)),
                  slice(max(sl[1].start - reach, 0), min(sl[1].stop + reach, w)))
        # One distance transform per object, on its window only: O(pixels), as `adjacency`.
        d = ndimage.distance_transform_edt(labels[window] != k).astype(np.float32)
        near, second = d1[window], d2[window]
        d2[window] = np.minimum(second, np.maximum(near, d))
        d1[window] = np.minimum(near, d)
    between = (labels == 0) & np.isfinite(d2)
    out[between] += weight * np.exp(-((d1[between] + d2[between]) ** 2) / (2 * sigma**2))
    return out


def greedy_colouring(pairs: np.ndarray, order: Sequence[int], colours: int) -> np.ndarray:
    """Cell colours 1..colours-1 for labels 1..n (index 0, the background, stays 0): each
    label in `order` takes the lowest colour none of its coloured neighbours has, or, when
    all are taken, the one fewest of them have."""
    n = max(order, default=0)
    neighbours: list[list[int]] = [[] for _ in range(n + 1)]
    for i, j in pairs.tolist():
        if i and j:
            neighbours[i].append(j)
            neighbours[j].append(i)
    colour = np.zeros(n + 1, np.int64)
    for i in order:
        taken = np.bincount(colour[neighbours[i]], minlength=colours)[1:colours]
        colour[i] = 1 + int(np.argmin(taken))  # argmin picks the lowest of the free colours
    return colour


def colouring_order(labels: np.ndarray, depth: np.ndarray, rule: str) -> list[int]:
    """Labels 1..n in the order `greedy_colouring` visits them: "depth" front to back, or
    "raster" top to bottom, left to right, by centroid; ties in depth go by raster."""
    if rule not in ("depth", "raster"):
        raise ValueError(f"unknown colour order {rule!r}; choose 'depth' or 'raster'")
    n = len(depth)
    if n == 0:
        return []
    centres = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, np.arange(1, n + 1))).reshape(n, 2)
    keys = (centres[:, 1], centres[:, 0]) + ((depth,) if rule == "depth" else ())
    return (np.lexsort(keys) + 1).tolist()


def _instances(labels: np.ndarray, confidence: np.ndarray, min_size: int) -> Instances:
    """Connected-component labels -> Instances with at least `min_size` pixels, scored by mean confidence."""
    flat = labels.ravel()
    sizes = np.bincount(flat)
    keep = sizes >= min_size
    keep[0] = False
    dense = (np.cumsum(keep) * keep).astype(np.int32)[flat]
    n = int(keep.sum())
    if n == 0:
        return Instances.empty(labels.shape)
    scores = np.bincount(dense, weights=confidence.ravel(), minlength=n + 1)[1:] / sizes[keep]
    dense = dense.reshape(labels.shape)
    slices = ndimage.find_objects(dense)  # tight boxes already: no trimming needed
    boxes = np.array([(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in slices], np.int32)
    masks = tuple(dense[s] == k for k, s in enumerate(slices, start=1))
    return Instances(labels.shape, boxes, masks, scores.astype(np.float32), np.zeros(n, np.int32))


def argmax_colour(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour, confidence) of (K, H, W) maps; ties go to the lower colour, as argmax."""
    # numpy's argmax over the first axis is not vectorised; max is, and K passes are cheap.
    confidence = h.max(0)
    colour = np.zeros(h.shape[1:], np.int32)
    for k in range(len(h) - 1, -1, -1):
        colour[h[k] == confidence] = k
    return colour, confidence


def colour_labels(colour: np.ndarray) -> np.ndarray:
    """Connected components of equal colour (0 = background), all colours in one pass."""
    return label_regions(colour, background=0, connectivity=1)


def affinity_labels(foreground: np.ndarray, edge_y: np.ndarray, edge_x: np.ndarray, threshold: float) -> np.ndarray:
    """Components of foreground pixels joined across 4-neighbour edges of affinity > threshold.

    edge_y[y, x] links (y, x)-(y + 1, x); edge_x[y, x] links (y, x)-(y, x + 1).
    """
    # Pixels on the even sites of a doubled grid, kept edges on the odd sites between them:
    # one 4-connected labelling of that grid is ~3x faster than a sparse-graph search.
    h, w = foreground.shape
    grid = np.zeros((2 * h - 1, 2 * w - 1), bool)
    grid[::2, ::2] = foreground
    grid[1::2, ::2] = foreground[:-1] & foreground[1:] & (edge_y > threshold)
    grid[::2, 1::2] = foreground[:, :-1] & foreground[:, 1:] & (edge_x > threshold)
    return label_regions(grid, connectivity=1)[::2, ::2]


class FCRNet(DenseMethod):
    name = "fcrnet"
    amodal = False
    tta_merge = "instances"  # of the default tta; `tta_merge_for` gives it for any config
    layout = FieldLayout(vectors=((0, 1),), axis_pairs=((2, 3),))
    pipeline_defaults = {"tta_min_votes": 4}

    def default_config(self) -> dict[str, Any]:
        return {
            "net": "unet",
            "net_options": {"base": 16, "depth": 5, "full_res": 8},
            "colours": 4,  # K, background included (the paper's ablation: 3, 4, 10)
            "alpha_schedule": [2.0, 2.0, 4.0, 6.0, 8.0],
            "adjacency_scale": 0.5,  # dilation radius / median object radius
            "adjacency_min": 2,
            "adjacency_max": 12,
            "w_inner": 1.0,
            "w_inter": 1.0,  # the paper does not weigh the terms; 4 fragments cells (see above)
            "w_background": 1.0,
            "separation_weight": 10.0,  # U-Net's w0 and sigma for the background pin
            "separation_sigma": 5.0,
            "w_colour": 0.0,  # a fixed colouring of the truth to follow (0: the paper's loss alone)
            "colour_order": "depth",
            "colour_fade": [0.3, 0.6],  # w_colour falls to 0 between these fractions of the budget
            "min_size": 16,
            "tta": "instances",  # or "affinity" (measured equal within noise on DSB; see the benchmark)
            "affinity_threshold": 0.5,
            "foreground_threshold": 0.5,
        }

    def build(self, config: Config) -> torch.nn.Module:
        if int(config["colours"]) < 2:
            raise ValueError("FCRNet needs at least 2 colours (background and cells)")
        return build_net(config["net"], 1, [int(config["colours"])], **config.get("net_options", {}))

    def tta_merge_for(self, config: Config) -> str:
        """The TTA merge rule `config["tta"]` needs: "fields" for affinity, else "instances"."""
        if config["tta"] not in ("affinity", "instances"):
            raise ValueError(f"unknown FCRNet tta {config['tta']!r}; choose 'affinity' or 'instances'")
        return "fields" if config["tta"] == "affinity" else "instances"

    def on_progress(self, config: Config, fraction: float) -> dict[str, Any]:
        """The config for the next training step at `fraction` of the budget (sets "train_alpha"
        and "train_w_colour")."""
        start, end = config.get("colour_fade", (1.0, 1.0))
        fade = float(np.clip((end - fraction) / max(end - start, 1e-9), 0.0, 1.0))
        return {**config, "train_alpha": alpha_at(config, fraction), "train_w_colour": config.get("w_colour", 0.0) * fade}

    # ------------------------------------------------------------------ training
    def targets(self, instances: Instances, config: Config) -> dict[str, np.ndarray]:
        visible = instances.visible()
        labels = visible.visible_labels().astype(np.int64)
        pairs = adjacency(labels, object_radius(labels, config))
        if len(visible) and (labels == 0).any():  # background touches every cell
            cells = np.arange(1, len(visible) + 1)
            pairs = np.concatenate([np.stack([np.zeros_like(cells), cells], 1), pairs])
        weights = separation_weights(labels, float(config["separation_weight"]), float(config["separation_sigma"]))
        colours = np.zeros(len(visible) + 1, np.int64)  # unused by the paper's loss alone
        if config.get("w_colour", 0.0) > 0:
            order = colouring_order(labels, visible.depth, config.get("colour_order", "depth"))
            # Only cells that touch need different colours; the loss's wider radius would ask
            # for more colours than there are (four mutually near blastomeres).
            colours = greedy_colouring(adjacency(labels, 2), order, int(config["colours"]))
        return {"labels": labels, "pairs": pairs, "groups": np.array(len(visible) + 1, np.int64), "weights": weights, "colours": colours}

    def collate(self, targets: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        return {
            "labels": torch.from_numpy(np.stack([t["labels"] for t in targets])),
            "pairs": [torch.from_numpy(t["pairs"]) for t in targets],
            "groups": torch.tensor([int(t["groups"]) for t in targets]),
            "weights": torch.from_numpy(np.stack([t["weights"] for t in targets])),
            "colours": torch.from_numpy(np.concatenate([t["colours"] for t in targets])),
        }

    def loss(self, raw: torch.Tensor, targets: Mapping[str, Any], config: Config) -> dict[str, torch.Tensor]:
        # Every instance of every image is one group (image b's background is group
        # offset[b]), so the whole batch is reduced by single index_adds.
        alpha = float(config.get("train_alpha", config["alpha_schedule"][0]))
        logits = power_logits(raw, alpha)
        h = torch.softmax(logits, dim=1)
        b, k = h.shape[:2]
        device = raw.device
        groups = targets["groups"].to(device)
        offset = torch.cumsum(groups, 0) - groups
        gid = (targets["labels"].to(device) + offset.view(b, 1, 1)).reshape(-1)
        n_groups = int(groups.sum())
        pixels = h.permute(0, 2, 3, 1).reshape(-1, k)
        counts = torch.bincount(gid, minlength=n_groups).to(h.dtype)
        present = counts > 0
        mean = torch.zeros(n_groups, k, dtype=h.dtype, device=device).index_add_(0, gid, pixels) / counts.clamp(min=1)[:, None]
        spread = 1 - F.cosine_similarity(pixels, mean[gid], dim=1, eps=1e-8)
        inner = (torch.zeros(n_groups, dtype=h.dtype, device=device).index_add_(0, gid, spread) / counts.clamp(min=1))[present].mean()
        pairs = torch.cat([p.to(device) + offset[i] for i, p in enumerate(targets["pairs"])])
        inter = raw.sum() * 0
        if len(pairs):
            similarity = F.cosine_similarity(mean[pairs[:, 0]], mean[pairs[:, 1]], dim=1, eps=1e-8).abs()
            source, value = torch.cat([pairs[:, 0], pairs[:, 1]]), torch.cat([similarity, similarity])
            degree = torch.bincount(source, minlength=n_groups).to(h.dtype)
            per_group = torch.zeros(n_groups, dtype=h.dtype, device=device).index_add_(0, source, value)
            inter = (per_group / degree.clamp(min=1))[degree > 0].mean()
        # The pin is a per-pixel log loss on colour 0: a cosine of means saturates once a
        # near one-hot background has settled in another colour and cannot pull it back.
        log_h = torch.log_softmax(logits, dim=1)
        is_background = (targets["labels"].to(device) == 0).to(h.dtype)
        pixel_loss = is_background * log_h[:, 0] + (1 - is_background) * torch.logsumexp(log_h[:, 1:], dim=1)
        pin = -(targets["weights"].to(device) * pixel_loss).mean()
        total = config["w_inner"] * inner + config["w_inter"] * inter + config["w_background"] * pin
        out = {"inner": inner, "inter": inter, "background": pin}
        w_colour = float(config.get("train_w_colour", config.get("w_colour", 0.0)))
        if w_colour > 0:
            # The truth's colour of each cell pixel (groups are numbered as `colours` is laid out).
            target = targets["colours"].to(device)[gid]
            cell = target > 0
            picked = log_h.permute(0, 2, 3, 1).reshape(-1, k)[cell].gather(1, target[cell, None])
            out["colour"] = -picked.mean() if cell.any() else raw.sum() * 0
            total = total + w_colour * out["colour"]
        return {**out, "total": total}

    # ------------------------------------------------------------------ inference
    def activate(self, raw: torch.Tensor, config: Config) -> torch.Tensor:
        h = power_normalise(raw, float(config["alpha_schedule"][-1]))
        return torch.cat([neighbour_affinities(h), h], 1)

    def postprocess(self, maps: torch.Tensor, config: Config) -> Instances:
        maps = maps.float().cpu()
        colours = maps[N_AFFINITY:]
        if config["tta"] == "affinity":
            edges = maps[:N_AFFINITY].numpy()
            # R(y, x) and L(y, x + 1) are the same edge: average the two estimates.
            edge_y = ((edges[2] + edges[0])[:-1] + (edges[2] - edges[0])[1:]) / 4
            edge_x = ((edges[3] + edges[1])[:, :-1] + (edges[3] - edges[1])[:, 1:]) / 4
            background = colours[0].numpy()
            foreground = background < config["foreground_threshold"]
            labels = affinity_labels(foreground, edge_y, edge_x, config["affinity_threshold"])
            return _instances(labels, 1 - background, int(config["min_size"]))
        colour, confidence = argmax_colour(colours.numpy())
        return _instances(colour_labels(colour), confidence, int(config["min_size"]))

    def view_agreement(self, views: torch.Tensor, instances: Instances, config: Config) -> np.ndarray:
        """Per instance, the mean fraction of the views that call its pixels foreground."""
        votes = (views[:, N_AFFINITY] < config["foreground_threshold"]).float().mean(0).cpu().numpy()
        return np.array(
            [votes[b[0] : b[2], b[1] : b[3]][m].mean() for b, m in zip(instances.boxes, instances.masks)], np.float32
        )


def colour_maps(colour: np.ndarray, colours: int, sharp: float = 1.0) -> torch.Tensor:
    """(C, H, W) activated maps of a hand-made colour image (0 = background); for tests and tools."""
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(np.asarray(colour, np.int64)), colours)
    h = one_hot.permute(2, 0, 1).float() * sharp + (1 - sharp) / colours
    return torch.cat([neighbour_affinities(h[None])[0], h], 0)


def permuted(maps: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """The maps with the cell colours reordered (`order` of the K - 1 cell colours)."""
    cells = maps[N_AFFINITY + 1 :][list(order)]
    return torch.cat([maps[: N_AFFINITY + 1], cells], 0)


METHOD = FCRNet()
