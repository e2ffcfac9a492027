"""Layered embeddings (Liu, Psota & Perez 2019, seed paper 002): amodal instances bottom-up.

At every pixel, layer k holds the k-th instance from the front (by depth) covering it,
for L layers (default 3; the paper has 2: "foreground" and "occlusion"). Per layer the
network predicts an occupancy logit and a C-dimensional embedding (C = 8). A variant of
De Brabandere's discriminative loss pulls the embeddings of an instance, over ALL its
pixels in ALL layers, towards one mean and pushes means apart (L1 distances), so that
clustering the embeddings of the occupied pixels of all layers gives each instance's
full extent (the union over layers) and, from the layers it occupies, its depth order.

Deviations from the paper, and why:
- Backbone: the shared compact U-Net of `blastoseg.nets` (or ERFNet), not DeepLabV3+
  with a pretrained Xception, which is too slow to train and run on CPUs and whose
  pretrained weights cannot be downloaded offline. Its full-resolution level is 16 wide
  (embedseg uses 8) because L + L*C = 27 outputs come out of it by a 1x1 convolution.
  Output is at full resolution, not the paper's 64 x 64 for a 256 x 256 input.
- One class: the occupancy head is "this layer is occupied" (background / occupied, a
  logit per layer, binary cross-entropy), not K classes, and the distance term pushes
  apart every pair of instances of an image (the paper only pairs instances of a class,
  which it can separate by the semantic head; here nothing else would).
- Loss terms are averaged over the instances (pairs) of the whole batch; the
  regulariser weight is 0.001, not 1, so it does not compete with the distance term.
  An optional soft Dice term on the occupancy (`w_dice`, default 0) is not in the paper.
- Clustering, depth and scores: see `layered_cluster` (mean-shift, L1, bandwidth 1.5).
- Optional convex completion (`convex`, default off; a tuning choice): each amodal mask
  becomes its convex hull. For near-convex cells such as blastomeres it completes hidden
  parts the network leaves short (synthetic embryos, with the hidden-layer threshold
  re-tuned beside it: +0.04 mAP, docs/benchmarks.md).
- Each instance keeps only its main connected parts (`MAIN_PART`), with or without
  convex completion: stray pixels of the clustering, not in the paper's pipeline.

Channels of the raw output and of `activate` (all scalars for D4): 0..L-1 occupancy
(logits, probabilities after `activate`); then L blocks of C embedding channels, block k
for layer k.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from blastoseg.d4 import FieldLayout
from blastoseg.instances import Instances
from blastoseg.methods.base import Config, DenseMethod
from blastoseg.methods.layered.cluster import cluster_layers, main_parts
from blastoseg.nets import build_net

# An instance's parts below this fraction of its largest are dropped: a few pixels given
# to it away from its body made its convex hull span both (mAP with TTA on the 50
# validation embryos 0.743 -> 0.754, on 150 others 0.726 -> 0.727).
MAIN_PART = 0.2



def layer_labels(instances: Instances, n_layers: int) -> np.ndarray:
    """(L, H, W) int32: plane k holds label i+1 where instance i is the k-th from the front.

    Exact for any stack depth (instances beyond the L-th at a pixel are dropped); ties in
    depth go to the lower index, as in `Instances.visible_labels`.
    """
    out = np.zeros((n_layers, *instances.shape), np.int32)
    stacked = np.zeros(instances.shape, np.int32)  # instances already in front, per pixel
    # Walking instances front to back, a pixel's count of earlier covers is its layer.
    for i in instances.front_order():
        y0, x0 = instances.boxes[i, :2]
        ys, xs = np.nonzero(instances.masks[i])
        ys, xs = ys + y0, xs + x0
        k = stacked[ys, xs]
        shown = k < n_layers
        out[k[shown], ys[shown], xs[shown]] = i + 1
        stacked[ys, xs] += 1
    return out


def clip_to_layers(instances: Instances, n_layers: int) -> Instances:
    """Each instance cut to the pixels where it is among the L front-most (the paper's upper bound)."""
    planes = layer_labels(instances, n_layers)
    present = np.unique(planes[planes > 0]) - 1
    return Instances.from_layered(planes, scores=instances.scores[present], depth=instances.depth[present])


class Layered(DenseMethod):
    name = "layered"
    amodal = True
    tta_merge = "instances"  # embeddings are arbitrary per view: they cannot be averaged
    layout = FieldLayout()
    pipeline_defaults = {"tta_min_votes": 4}
    # Hidden layers are sparse (a few % of pixels) and their occupancy less certain, so
    # they get their own threshold.
    tuning_grid = {
        "foreground_threshold": (0.4, 0.5),
        "deep_threshold": (0.2, 0.3, 0.4, 0.5),
        "bandwidth": (1.25, 1.5, 1.75),
        "convex": (False, True),
    }
    # No `tta_tuning_grid`: settings chosen for the TTA consensus on the 50 validation
    # embryos (front 0.4, deep 0.3, 3 votes: 0.743 -> 0.757) lost on 150 others (0.726 -> 0.714).

    def default_config(self) -> dict[str, Any]:
        return {
            "net": "unet",
            "net_options": {"base": 16, "depth": 5, "full_res": 16},
            "layers": 3,
            "embedding_dim": 8,
            "delta_var": 0.5,
            "delta_dist": 1.5,  # means are pushed 2 * delta_dist apart (L1)
            "bandwidth": 1.5,  # L1, flat kernel
            "foreground_threshold": 0.5,
            "deep_threshold": None,  # occupancy threshold of layers 1.. (None: foreground_threshold)
            "min_size": 32,  # amodal pixels
            "convex": False,  # complete each amodal mask to its convex hull (near-convex cells)
            "cluster_sample": 2048,  # points the mode search runs on
            "cluster_batch": 64,  # seeds shifted at once
            "max_instances": 128,  # per image (tile), best supported first
            "w_var": 1.0,
            "w_dist": 1.0,
            "w_reg": 0.001,
            "w_semantic": 1.0,
            "w_dice": 0.0,  # optional soft Dice on the occupancy, for sparse deep layers
        }

    def build(self, config: Config) -> torch.nn.Module:
        n_layers, dims = int(config["layers"]), int(config["embedding_dim"])
        return build_net(config["net"], 1, [n_layers, n_layers * dims], **config.get("net_options", {}))

    # ------------------------------------------------------------------ training
    def targets(self, instances: Instances, config: Config) -> dict[str, np.ndarray]:
        return {"layers": layer_labels(instances, int(config["layers"])), "n": np.array(len(instances))}

    def collate(self, targets: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        """Labels renumbered batch-wide (instance ids are unique across images) plus each id's image."""
        layers, owner, offset = [], [], 0
        for b, t in enumerate(targets):
            labels = t["layers"].astype(np.int64)
            layers.append(np.where(labels > 0, labels + offset, 0))
            n = int(t["n"])
            owner.append(np.full(n, b, np.int64))
            offset += n
        return {"layers": torch.from_numpy(np.stack(layers)), "owner": torch.from_numpy(np.concatenate(owner))}

    def loss(self, raw: torch.Tensor, targets: Mapping[str, Any], config: Config) -> dict[str, torch.Tensor]:
        n_layers, dims = int(config["layers"]), int(config["embedding_dim"])
        b, _, h, w = raw.shape
        layers = targets["layers"].to(raw.device)
        owner = targets["owner"].to(raw.device)
        occupied_t = (layers > 0).to(raw.dtype)
        semantic = F.binary_cross_entropy_with_logits(raw[:, :n_layers], occupied_t)
        # Optional soft Dice per (image, layer): deeper layers cover a few percent of the
        # pixels, and Dice ignores that imbalance (off by default: no gain seen in short runs).
        prob = torch.sigmoid(raw[:, :n_layers])
        overlap = (prob * occupied_t).sum((2, 3))
        dice = (1 - (2 * overlap + 1) / (prob.sum((2, 3)) + occupied_t.sum((2, 3)) + 1)).mean()
        emb = raw[:, n_layers:].reshape(b, n_layers, dims, h * w).transpose(2, 3).reshape(-1, dims)
        flat = layers.reshape(-1)
        occupied = torch.nonzero(flat).squeeze(1)
        index = flat[occupied] - 1
        points = emb[occupied]
        n = owner.numel()
        counts = torch.bincount(index, minlength=n)
        present = counts > 0
        zero = raw.sum() * 0
        var = dist = reg = zero
        if bool(present.any()):
            denom = counts.clamp(min=1).to(raw.dtype)
            means = torch.zeros(n, dims, dtype=raw.dtype, device=raw.device).index_add_(0, index, points) / denom[:, None]
            spread = ((points - means[index]).abs().sum(1) - config["delta_var"]).clamp(min=0) ** 2
            per_instance = torch.zeros(n, dtype=raw.dtype, device=raw.device).index_add_(0, index, spread) / denom
            var = per_instance[present].mean()
            mu, image = means[present], owner[present]
            gap = (mu[:, None] - mu[None]).abs().sum(-1)
            pairs = (image[:, None] == image[None]) & ~torch.eye(len(mu), dtype=torch.bool, device=raw.device)
            if bool(pairs.any()):
                dist = ((2 * config["delta_dist"] - gap[pairs]).clamp(min=0) ** 2).mean()
            reg = mu.abs().sum(1).mean()
        total = (
            config["w_var"] * var + config["w_dist"] * dist + config["w_reg"] * reg
            + config["w_semantic"] * semantic + config.get("w_dice", 0.0) * dice
        )
        return {"total": total, "var": var, "dist": dist, "reg": reg, "semantic": semantic, "dice": dice}

    # ------------------------------------------------------------------ inference
    def activate(self, raw: torch.Tensor, config: Config) -> torch.Tensor:
        n_layers = int(config["layers"])
        return torch.cat([torch.sigmoid(raw[:, :n_layers]), raw[:, n_layers:]], 1)

    def postprocess(self, maps: torch.Tensor, config: Config) -> Instances:
        n_layers, dims = int(config["layers"]), int(config["embedding_dim"])
        maps = maps.detach().float().cpu()
        h, w = maps.shape[-2:]
        found = cluster_layers(
            maps[:n_layers],
            maps[n_layers:].reshape(n_layers, dims, h, w),
            bandwidth=float(config["bandwidth"]),
            threshold=float(config["foreground_threshold"]),
            deep_threshold=config.get("deep_threshold"),
            min_size=int(config["min_size"]),
            sample=int(config.get("cluster_sample", 2048)),
            batch=int(config.get("cluster_batch", 64)),
            max_modes=int(config.get("max_instances", 128)),
        )
        found = main_parts(found, MAIN_PART)
        return found.convex() if config.get("convex") else found


METHOD = Layered()
