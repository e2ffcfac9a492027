"""VQ shape codes for amodal blastomeres (seed paper 001): Mask R-CNN + VQ-VAE mask head.

A `Detector`, not a dense-map method (see `methods.base`): `pretrain` fits the VQ-VAE shape prior on ground-truth amodal masks
before the detector trains, `training_loss` runs the detector on a batch with its
targets, and `detect` turns a batch of views into `Instances` (predict merges the eight
D4 views with the "instances" consensus). The networks are in `heads`, the
VQ-VAE in `vqvae`.

Loss: L = Lp + Ld + 0.01 Lo + Le + Lr: torchvision's RPN and box losses, the occlusion
BCE (mean over the finest level's pixels, targets = fraction of the pixel's 4 x 4 cell
covered by >= 2 amodal masks), the code BCE (Eq. 3; summed over the K codes, averaged
over positions and RoIs) and the refined mask BCE (Eq. 4). The "fcn" baseline uses the
standard Mask R-CNN mask BCE instead of Le + Lr. Without refinement the decoded initial
mask is the output and Le is the only mask loss, as in the paper's ablation.

Deviations, and why: ResNet-18's first three stages (the third with one block, not
two), an FPN 96 wide and a narrow box head, trained from scratch (20 MB budget, CPU
speed, no downloads);
K = 64 codes of dimension 32 on a 7 x 7 grid (a 392 -> 3136 FC keeps the head small);
depth order is not predicted: instances are ranked front to back by score.

With `fragments`, the box classifier has a third class, fragment (cytoplasm pieces
that are not cells), so fragments are detected as such and never counted as cells.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from blastoseg.instances import CELL, FRAGMENT, Instances
from blastoseg.methods.base import Config, Detector

if TYPE_CHECKING:
    from blastoseg.model import Model

# How far below the cell class a new fragment class's logit starts (e^-6: 0.25 % of its odds).
FRAGMENT_START = 6.0

LOSS_WEIGHTS = {"loss_objectness": 1.0, "loss_rpn_box_reg": 1.0, "loss_classifier": 1.0, "loss_box_reg": 1.0,
                "mask": 1.0, "code": 1.0, "refine": 1.0}


def occlusion_target(instances: Instances) -> np.ndarray:
    """(H, W) float32: 1 where two or more amodal masks overlap."""
    return (instances.coverage() >= 2).astype(np.float32)


def paste_masks(
    boxes: torch.Tensor, masks: torch.Tensor, shape: tuple[int, int], threshold: float = 0.5
) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Mask probabilities (N, S, S) on float boxes (N, 4) x0, y0, x1, y1 -> N (box, bool crop) pairs.

    Each image pixel inside a box's integer hull samples the S x S mask at the pixel's
    centre (bilinear; outside the box the mask is 0), so a mask lands exactly on its box.
    """
    pairs = []
    boxes, masks = boxes.float().cpu(), masks.float().cpu()
    for (bx0, by0, bx1, by1), mask in zip(boxes.tolist(), masks):
        y0, x0 = max(int(np.floor(by0)), 0), max(int(np.floor(bx0)), 0)
        y1, x1 = min(int(np.ceil(by1)), shape[0]), min(int(np.ceil(bx1)), shape[1])
        if y1 <= y0 or x1 <= x0 or by1 - by0 <= 0 or bx1 - bx0 <= 0:
            pairs.append(((0, 0, 1, 1), np.zeros((1, 1), bool)))  # keeps pairs aligned with boxes
            continue
        ys = ((torch.arange(y0, y1) + 0.5) - by0) / (by1 - by0) * 2 - 1
        xs = ((torch.arange(x0, x1) + 0.5) - bx0) / (bx1 - bx0) * 2 - 1
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]  # (1, h, w, (x, y))
        sampled = F.grid_sample(mask[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        pairs.append(((y0, x0, y1, x1), (sampled[0, 0] >= threshold).numpy()))
    return pairs


class VQShape(Detector):
    name = "vqshape"
    amodal = True
    # Eight views voting reject the spurious detections a single view's high score
    # threshold guards against, so with TTA a laxer threshold or fewer votes may keep
    # hidden cells that some views score low.
    pipeline_defaults = {"working_size": 256, "tile_overlap": 128, "tta_min_votes": 4}
    tta_tuning_grid = {"box_score_thresh": (0.5, 0.65, 0.8, 0.9, 0.95), "tta_min_votes": (3, 4, 5)}
    architecture_keys = ("fragments",)

    def default_config(self) -> dict[str, Any]:
        return {
            # network
            "backbone_blocks": [2, 2, 1], "fpn_width": 96,
            "anchor_sizes": [24, 48, 96, 192], "aspect_ratios": [0.5, 1.0, 2.0],
            "box_head_conv": [32], "box_head_fc": 256,
            "mask_head": "vq", "refine": True, "occlusion": True, "occlusion_width": 48, "fragments": False,
            "fcn_layers": [64, 64, 64, 64],
            "codebook_size": 64, "code_dim": 32, "vq_width": 32, "vq_beta": 0.25,
            "code_head_width": 64, "code_head_bottleneck": 8, "refine_width": 64,
            # proposals and detections: amodal boxes overlap strongly, so box NMS at 0.7, not 0.5
            "rpn_pre_nms_top_n_train": 1000, "rpn_post_nms_top_n_train": 500,
            "rpn_pre_nms_top_n_test": 500, "rpn_post_nms_top_n_test": 200,
            "rpn_nms_thresh": 0.7, "rpn_batch_size_per_image": 256,
            "box_batch_size_per_image": 128, "box_positive_fraction": 0.25,
            "box_score_thresh": 0.05, "box_nms_thresh": 0.7, "box_detections_per_img": 32,
            "mask_threshold": 0.5, "mask_nms_thresh": 0.5, "min_size": 16,
            # Two masks over IoU mask_nms_thresh stay two cells (stacked in depth) when each
            # keeps a part of its own this deep (x its radius), unless their IoU passes
            # stacked_below_iou; chosen on synthetic validation embryos (docs/experiments.md).
            "stacked_part": 0.2, "stacked_below_iou": 0.85,
            # losses and VQ-VAE pre-training
            "w_occlusion": 0.01,
            "pretrain_fraction": 0.1, "vq_lr": 1e-3, "vq_jitter": 0.15, "vq_copies": 4, "vq_restart_every": 50,
        }

    def build(self, config: Config) -> torch.nn.Module:
        from blastoseg.methods.vqshape.heads import VQShapeNet

        return VQShapeNet(config)

    def finds_fragments(self, config: Config) -> bool:
        return bool(config.get("fragments", False))

    def rebuilt(self, net: torch.nn.Module, config: Config) -> torch.nn.Module:
        """The network for the new config; a box predictor grown by the fragment class
        starts that class from the cell class's weights, its logit lowered so that the
        cells keep their scores until the fragments are learnt. The rest is copied."""
        new = self.build(config)
        target = new.state_dict()
        for key, value in net.state_dict().items():
            if key not in target:
                continue
            if target[key].shape == value.shape:
                target[key] = value
            elif "box_predictor" in key and value.shape[1:] == target[key].shape[1:]:
                rows = value.shape[0] // 2  # per class: 1 logit (cls_score) or 4 offsets (bbox_pred)
                if target[key].shape[0] > value.shape[0]:
                    extra = value[rows:].clone()
                    if key.endswith("cls_score.bias"):
                        extra -= FRAGMENT_START
                    target[key] = torch.cat([value, extra])
                else:
                    target[key] = value[: 2 * rows]
        new.load_state_dict(target)
        return new

    # ------------------------------------------------------------------ training
    def targets(self, instances: Instances, config: Config) -> dict[str, np.ndarray]:
        cells = instances.of_class(CELL)
        return {
            "boxes": instances.boxes[:, [1, 0, 3, 2]].astype(np.float32).reshape(-1, 4),  # x0, y0, x1, y1
            "labels": (1 + (instances.classes == FRAGMENT)).astype(np.int64),
            "masks": instances.to_mask_stack().astype(np.uint8),
            "occlusion": occlusion_target(cells),
        }

    def collate(self, targets: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        return {
            "boxes": [torch.from_numpy(t["boxes"]) for t in targets],
            "labels": [torch.from_numpy(t["labels"]) for t in targets],
            "masks": [torch.from_numpy(t["masks"]) for t in targets],
            "occlusion": torch.from_numpy(np.stack([t["occlusion"] for t in targets]))[:, None],
        }

    def training_loss(
        self, net: torch.nn.Module, images: torch.Tensor, targets: Mapping[str, Any], config: Config
    ) -> dict[str, torch.Tensor]:
        """Named loss terms of one batch; "total" is minimised."""
        device = images.device
        net.configure(config)
        detector_targets = [
            {"boxes": b.to(device), "labels": c.to(device), "masks": m.to(device)}
            for b, c, m in zip(targets["boxes"], targets["labels"], targets["masks"])
        ]
        terms = net(images, detector_targets, targets["occlusion"].to(device))
        weights = {**LOSS_WEIGHTS, "occlusion": float(config["w_occlusion"])}
        terms["total"] = sum(weights[k] * v for k, v in terms.items() if k in weights)
        return terms

    def pretrain(
        self, model: Model, batches: Iterator[Sequence[Instances]], device: torch.device
    ) -> Iterator[dict[str, float]]:
        """Fit the VQ-VAE on the ground-truth amodal masks of `batches` until the caller stops.

        Does nothing for the FCN head or an already trained VQ-VAE (fine-tuning).
        """
        from blastoseg.methods.vqshape.vqvae import pretrain_steps

        vqvae, config = getattr(model.net, "vqvae", None), model.config
        if vqvae is None or int(vqvae.trained):
            return
        ious: list[float] = []
        try:
            steps = pretrain_steps(vqvae.to(device), batches, device, lr=float(config["vq_lr"]), jitter=float(config["vq_jitter"]),
                                   copies=int(config["vq_copies"]), restart_every=int(config["vq_restart_every"]))
            for losses in steps:
                ious.append(losses["vq_iou"])
                yield losses
        finally:
            # Stopped by the budget or a Cancel: what was learnt is the shape prior from now on.
            vqvae.freeze(True)
            vqvae.eval()
            vqvae.trained.fill_(1)
            recent = round(float(np.mean(ious[-50:])), 4) if ious else None
            model.metadata["vqvae"] = {"steps": len(ious), "train_reconstruction_iou": recent}

    # ------------------------------------------------------------------ inference
    def detect(self, net: torch.nn.Module, images: torch.Tensor, config: Config) -> list[Instances]:
        """A batch of views (B, 1, H, W) -> one `Instances` per view, in that view's frame."""
        from blastoseg.inference.merging import merge_duplicates

        net.configure(config)
        shape = (int(images.shape[-2]), int(images.shape[-1]))
        stacked = (float(config["stacked_part"]), float(config["stacked_below_iou"])) if config["stacked_part"] else None
        found = []
        for detection in net(images):
            scores = detection["scores"].float().cpu().numpy()
            classes = (detection["labels"].cpu().numpy() == 2).astype(np.int8) * FRAGMENT
            pairs = paste_masks(detection["boxes"], detection["masks"], shape, float(config["mask_threshold"]))
            # Fragments are small: the minimum size is a cell's.
            kept = [i for i, (_, crop) in enumerate(pairs) if crop.sum() >= (int(config["min_size"]) if classes[i] == CELL else 4)]
            # Box order is not depth: rank front to back by score (the best seen is nearest).
            inst = Instances.from_masks(shape, [pairs[i] for i in kept], scores=scores[kept] if kept else [],
                                        depth=np.arange(len(kept)), classes=classes[kept] if kept else [])
            found.append(merge_duplicates(inst, float(config["mask_nms_thresh"]), stacked=stacked))
        return found

    # ------------------------------------------------------------------ reports
    def codebook_report(self, model: Model, instances: Sequence[Instances]) -> dict[str, float]:
        """Reconstruction IoU and codebook use of the model's VQ-VAE on the exact-box masks of `instances`."""
        from blastoseg.methods.vqshape.vqvae import mask_crops, reconstruction_report

        vqvae = getattr(model.net, "vqvae", None)
        if vqvae is None:
            return {}
        return reconstruction_report(vqvae, mask_crops(instances))


METHOD = VQShape()
