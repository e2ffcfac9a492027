"""EmbedSeg (Lalit et al. 2021, seed 004): spatial embeddings to the medoid.

Each pixel predicts an offset that carries it to its instance's medoid, a learned
per-axis bandwidth sigma and a seediness score. Training (after Neven et al. 2019):
a Lovasz hinge on the Gaussian map phi of every instance, a variance term that makes
sigma constant within an instance, and a seed loss regressing seediness to phi.
Inference: repeatedly take the unclustered pixel of highest seediness (> 0.9) and
collect the foreground pixels (seediness > 0.5) whose embedding lands inside its
Gaussian (phi > 0.5). EmbedSeg is modal: it segments what is visible.

Units: offsets and centres are in pixels; sigma = sigma_scale * exp(log-sigma channel).
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
from blastoseg.methods.embedseg.lovasz import lovasz_hinge
from blastoseg.methods.embedseg.medoid import instance_centres
from blastoseg.nets import build_net, zero_outputs


def window_max(x: torch.Tensor, size: int) -> torch.Tensor:
    """The maximum of (..., H, W) maps over a centred size x size window (odd size)."""
    r = size // 2
    if r == 0:
        return x
    # Rows, then columns, as elementwise maxima of shifted copies: ~5x faster on the CPU
    # than max_pool2d with a large kernel.
    h, w = x.shape[-2:]
    padded = F.pad(x, (r, r, r, r), value=float("-inf"))
    rows = padded[..., :, :w]
    for s in range(1, 2 * r + 1):
        rows = torch.maximum(rows, padded[..., :, s : s + w])
    out = rows[..., :h, :]
    for s in range(1, 2 * r + 1):
        out = torch.maximum(out, rows[..., s : s + h, :])
    return out


class EmbedSeg(DenseMethod):
    name = "embedseg"
    amodal = False
    tta_merge = "fields"
    pipeline_defaults = {"tile_overlap": 96}  # pixels; must exceed the largest object
    # activated channels: dy, dx (pixels), log-sigma y, log-sigma x, seediness, its maximum within `seed_window` px
    layout = FieldLayout(vectors=((0, 1),), axis_pairs=((2, 3),))
    tuning_grid = {"seed_threshold": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95), "foreground_threshold": (0.4, 0.5), "min_size": (8, 16, 32, 64)}

    def default_config(self) -> dict[str, Any]:
        return {
            "net": "unet",
            "net_options": {"base": 16, "depth": 5, "full_res": 8},
            "offset_scale": 64.0,  # largest offset in pixels (tanh bound); ~ the largest radius
            "sigma_scale": 8.0,  # sigma in pixels when the log-sigma channel is 0
            "centre": "medoid",  # or "centroid", the ablation of the paper's Table 2
            "seed_threshold": 0.9,
            "seed_window": 11,  # px; 1 scores a seed by its own seediness (models made before it)
            "foreground_threshold": 0.5,
            "min_size": 16,
            "w_instance": 1.0,
            "w_variance": 10.0,
            "w_seed": 1.0,
            "w_seed_foreground": 10.0,
        }

    def build(self, config: Config) -> torch.nn.Module:
        # Offsets and log-sigma start at 0: every pixel embedded at itself with sigma_scale.
        return zero_outputs(build_net(config["net"], 1, [4, 1], **config.get("net_options", {})), range(4))

    # ------------------------------------------------------------------ training
    def targets(self, instances: Instances, config: Config) -> dict[str, np.ndarray]:
        visible = instances.visible()
        labels = visible.visible_labels()
        centres = instance_centres(visible, mode=config["centre"])
        return {"labels": labels.astype(np.int64), "centres": centres.astype(np.float32)}

    def collate(self, targets: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        return {
            "labels": torch.from_numpy(np.stack([t["labels"] for t in targets])),
            "centres": [torch.from_numpy(t["centres"]) for t in targets],
        }

    def loss(self, raw: torch.Tensor, targets: Mapping[str, Any], config: Config) -> dict[str, torch.Tensor]:
        terms = {"instance": [], "variance": [], "seed": []}
        for b in range(raw.shape[0]):
            for key, value in self._image_loss(raw[b], targets["labels"][b].to(raw.device), targets["centres"][b].to(raw.device), config).items():
                terms[key].append(value)
        out = {k: torch.stack(v).mean() for k, v in terms.items()}
        out["total"] = (
            config["w_instance"] * out["instance"] + config["w_variance"] * out["variance"] + config["w_seed"] * out["seed"]
        )
        return out

    def _image_loss(self, raw: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor, config: Config) -> dict[str, torch.Tensor]:
        h, w = labels.shape
        offsets = config["offset_scale"] * torch.tanh(raw[0:2])
        log_sigma = raw[2:4]
        seed = torch.sigmoid(raw[4])
        ys, xs = torch.meshgrid(torch.arange(h, device=raw.device), torch.arange(w, device=raw.device), indexing="ij")
        emb = (torch.stack([ys, xs]).to(raw.dtype) + offsets).reshape(2, -1)
        flat = labels.reshape(-1)
        n = centres.shape[0]
        background = flat == 0
        zero = raw.sum() * 0
        if n == 0:
            return {"instance": zero, "variance": zero, "seed": (seed.reshape(-1) ** 2).mean()}
        index = (flat - 1).clamp(min=0)
        foreground = ~background
        counts = torch.bincount(flat, minlength=n + 1)[1:].clamp(min=1).to(raw.dtype)  # (n,)
        log_sigma_flat = log_sigma.reshape(2, -1)
        sums = torch.zeros(2, n, dtype=raw.dtype, device=raw.device).index_add_(1, index[foreground], log_sigma_flat[:, foreground])
        mean_log_sigma = (sums / counts).T  # (n, 2)
        spread = ((log_sigma_flat[:, foreground] - mean_log_sigma.detach().T[:, index[foreground]]) ** 2).sum(0)
        variance = torch.zeros(n, dtype=raw.dtype, device=raw.device).index_add_(0, index[foreground], spread) / counts
        sigma = config["sigma_scale"] * torch.exp(mean_log_sigma)  # (n, 2)
        d2 = ((emb[None] - centres[:, :, None]) ** 2 / (2 * sigma[:, :, None] ** 2)).sum(1)  # (n, HW)
        phi = torch.exp(-d2)
        truth = (flat[None, :] == torch.arange(1, n + 1, device=raw.device)[:, None]).to(raw.dtype)
        # Errors beyond a few object areas are confident background (phi ~ 0): skip their sort.
        top = int(min(flat.numel(), 4 * counts.max().item() + 1024))
        instance = lovasz_hinge(2 * phi - 1, truth, top=top)
        fg_target = phi.detach().gather(0, index[None])[0]
        seed_flat = seed.reshape(-1)
        seed_loss = torch.where(background, seed_flat**2, config["w_seed_foreground"] * (seed_flat - fg_target) ** 2).mean()
        return {"instance": instance.mean(), "variance": variance.mean(), "seed": seed_loss}

    # ------------------------------------------------------------------ inference
    def activate(self, raw: torch.Tensor, config: Config) -> torch.Tensor:
        seed = torch.sigmoid(raw[:, 4:5])
        # Channel 5, the seediness' maximum within `seed_window` px, scores the seeds.
        # Averaged over TTA views it keeps a peak that the views place a few pixels apart:
        # the plain average of those falls under the seed threshold and the nucleus is lost
        # (75 held-out DSB images: 27 nuclei fewer found at IoU 0.5 with TTA than without).
        peak = window_max(seed, int(config.get("seed_window", 1)))
        return torch.cat([config["offset_scale"] * torch.tanh(raw[:, 0:2]), raw[:, 2:4], seed, peak], 1)

    def postprocess(self, maps: torch.Tensor, config: Config) -> Instances:
        maps = maps.float().cpu()
        h, w = maps.shape[-2:]
        seed = maps[4].reshape(-1)
        fg_index = torch.nonzero(seed > config["foreground_threshold"]).squeeze(1)
        if fg_index.numel() == 0:
            return Instances.empty((h, w))
        # phi > 0.5 needs a pixel's embedding within sqrt(2 ln 2) sigma of the seed's, so in
        # particular its row: with the pixels sorted by their embedding's row, the ones a
        # seed can take are one short slice, not a band of rows as wide as the offset range.
        yx = torch.stack([fg_index // w, fg_index % w]).float()
        emb = yx + maps[0:2].reshape(2, -1)[:, fg_index]
        sigma = config["sigma_scale"] * torch.exp(maps[2:4].reshape(2, -1)[:, fg_index])
        # Only local maxima of the seed map may start an instance: a smooth seed map has one
        # per object, and a noisy one (an untrained model) cannot make the loop quadratic.
        peaks = (seed.reshape(h, w) == window_max(seed.reshape(h, w), 5)).reshape(-1)
        seeds = torch.where(peaks[fg_index], maps[5].reshape(-1)[fg_index], torch.zeros(()))
        candidates = torch.argsort(seeds, descending=True)
        candidates = candidates[seeds[candidates] >= config["seed_threshold"]]
        order = torch.argsort(emb[0])
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel())
        fg_index, emb, sigma, seeds, candidates = fg_index[order], emb[:, order].contiguous(), sigma[:, order], seeds[order], rank[candidates]
        # The loop runs once per candidate on short slices, where numpy's per-call cost is a
        # fraction of torch's.
        emb, sigma, seeds, fg = emb.numpy(), sigma.numpy(), seeds.numpy(), fg_index.numpy()
        labels, key = np.zeros(h * w, np.int32), emb[0]
        unclustered = np.ones(len(fg), bool)
        ln2 = float(np.log(2.0))
        scores = []
        for best in candidates.tolist():
            if not unclustered[best]:
                continue
            cy, cx = emb[0, best], emb[1, best]
            sy, sx = sigma[0, best], sigma[1, best]
            reach = 1.1775 * float(sy)
            lo = int(np.searchsorted(key, cy - reach, side="left"))
            hi = int(np.searchsorted(key, cy + reach, side="right"))
            dy, dx = (emb[0, lo:hi] - cy) / sy, (emb[1, lo:hi] - cx) / sx
            proposal = (dy * dy + dx * dx) / 2 < ln2  # phi > 0.5; the seed itself is at 0
            free = proposal & unclustered[lo:hi]
            size = int(proposal.sum())
            if size >= config["min_size"] and int(free.sum()) > size // 2:
                scores.append(float(seeds[best]))
                labels[fg[lo:hi][free]] = len(scores)
            unclustered[lo:hi] &= ~proposal
        return Instances.from_label_image(labels.reshape(h, w), scores=np.array(scores, np.float32))

    def view_agreement(self, views: torch.Tensor, instances: Instances, config: Config) -> np.ndarray:
        """Per instance, the mean fraction of the 8 views that call its pixels foreground."""
        votes = (views[:, 4] > config["foreground_threshold"]).float().mean(0).cpu().numpy()
        return np.array(
            [votes[b[0] : b[2], b[1] : b[3]][m].mean() for b, m in zip(instances.boxes, instances.masks)], np.float32
        )


METHOD = EmbedSeg()
