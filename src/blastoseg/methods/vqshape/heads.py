"""The `vqshape` network: torchvision's Mask R-CNN, an occlusion branch and a VQ mask head.

- Backbone: a ResNet-18 trunk (BatchNorm that trains, no pretrained weights, one input
  channel) cut after `len(backbone_blocks)` stages (default the first three, strides 4,
  8 and 16, the third with one block: the rest holds most of ResNet-18's weights and
  would break the 20 MB budget), with an FPN of `fpn_width` channels plus a max-pooled
  level.
- Occlusion branch (paper section 4.1): four 3x3 convolutions on the finest FPN level
  predict, per pixel, whether two or more amodal masks cover it. The output of the
  third (second-to-last) is average-pooled to every FPN level, concatenated to it and
  brought back to `fpn_width` by one shared 1x1 convolution, initialised as the identity
  on the FPN part and zero on the occlusion part (the network starts as plain Mask R-CNN).
  RPN, box head and mask head all read these fused features.
- Mask head: "fcn" is torchvision's `MaskRCNNHeads` + `MaskRCNNPredictor` (narrowed to
  `fcn_layers`); "vq" (section 4.2) is 3 convolutions + 1 fully connected layer -> K
  code logits on the M x M latent grid, decoded by the frozen VQ-VAE decoder (codes
  weighted by their normalised sigmoids, so the decoding is differentiable) into the
  initial mask, then optionally refined from the RoI features and the initial mask.
- The RoI box and mask targets are resampled with `roi_align(aligned=True)` for both
  heads, matching how `to_instances`-style pasting maps a mask onto its box.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
)
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from blastoseg.methods.vqshape.vqvae import VQVAE

Config = Mapping[str, Any]
MASK_SIZE = 28  # mask head output; the VQ-VAE latent grid is MASK_SIZE / 4


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    # Conv2d + BatchNorm2d in one Sequential: predict's fuse_batchnorm folds it.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def build_backbone(config: Config) -> BackboneWithFPN:
    blocks = [int(b) for b in config["backbone_blocks"]]
    trunk = ResNet(BasicBlock, blocks + [1] * (4 - len(blocks)), norm_layer=nn.BatchNorm2d)
    trunk.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # greyscale input
    # IntermediateLayerGetter keeps modules only up to the last returned stage.
    stages = {f"layer{i + 1}": str(i) for i in range(len(blocks))}
    return BackboneWithFPN(trunk, stages, [64 * 2**i for i in range(len(blocks))], int(config["fpn_width"]),
                           extra_blocks=LastLevelMaxPool())


class OcclusionBranch(nn.Module):
    """Four convolutions -> occlusion logits at the finest level; fuses layer 3's output into every level."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(_conv_bn(channels, width), _conv_bn(width, width), _conv_bn(width, width))
        self.predict = nn.Conv2d(width, 1, 3, padding=1)
        self.fuse = nn.Conv2d(channels + width, channels, 1)
        with torch.no_grad():
            self.fuse.weight.zero_()
            self.fuse.weight[:, :channels, 0, 0] = torch.eye(channels)
            self.fuse.bias.zero_()

    def forward(self, levels: OrderedDict[str, torch.Tensor]) -> tuple[OrderedDict[str, torch.Tensor], torch.Tensor]:
        hidden = self.features(next(iter(levels.values())))
        fused = OrderedDict()
        for name, level in levels.items():
            occ = hidden if level.shape[-2:] == hidden.shape[-2:] else F.adaptive_avg_pool2d(hidden, level.shape[-2:])
            fused[name] = self.fuse(torch.cat([level, occ], 1))
        return fused, self.predict(hidden)


class CodeHead(nn.Module):
    """Three convolutions and one fully connected layer: RoI features -> (K, M, M) code logits."""

    def __init__(self, channels: int, codes: int, latent: int, width: int, bottleneck: int) -> None:
        super().__init__()
        self.codes, self.latent = codes, latent
        self.convs = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width // 2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, bottleneck, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(bottleneck * latent * latent, codes * latent * latent)
        # Start at the prior p = 1/K per code: the summed BCE over K then starts near
        # log K + 1 instead of K log 2, which would swamp the detector's losses.
        nn.init.constant_(self.fc.bias, -math.log(max(codes - 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        if x.shape[-1] != self.latent:
            x = F.adaptive_avg_pool2d(x, self.latent)
        return self.fc(x.flatten(1)).reshape(-1, self.codes, self.latent, self.latent)


class RefineHead(nn.Module):
    """Refinement decoder (Eq. 4): RoI features + initial mask -> refined mask logits.

    The output is added to the initial logits and its last layer starts at zero, so
    refinement starts from the VQ-VAE's mask and learns corrections.
    """

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels + 1, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width // 2, 2, stride=2), nn.ReLU(inplace=True),
        )
        self.mix = nn.Sequential(
            nn.Conv2d(width // 2 + 1, width // 2, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width // 2, 1, 1)
        )
        nn.init.zeros_(self.mix[-1].weight)
        nn.init.zeros_(self.mix[-1].bias)

    def forward(self, roi_features: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(initial)
        x = self.features(torch.cat([roi_features, F.adaptive_avg_pool2d(prob, roi_features.shape[-2:])], 1))
        return initial + self.mix(torch.cat([x, prob], 1))


def soft_codes(logits: torch.Tensor) -> torch.Tensor:
    """Code logits (N, K, M, M) -> weights over codes summing to 1 per position."""
    weights = torch.sigmoid(logits)
    return weights / weights.sum(1, keepdim=True).clamp(min=1e-6)


def project_masks(masks: torch.Tensor, boxes: torch.Tensor, owner: torch.Tensor, size: int = MASK_SIZE) -> torch.Tensor:
    """(R, 1, size, size) crops of full-image masks (N, H, W) on boxes (R, 4) x0, y0, x1, y1."""
    rois = torch.cat([owner[:, None].to(boxes), boxes], 1)
    return roi_align(masks[:, None].to(boxes), rois, size, 1.0, 2, aligned=True)


class VQShapeNet(nn.Module):
    """`forward(images)` -> detections; `forward(images, targets, occlusion)` -> loss terms."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        width, n_stages = int(config["fpn_width"]), len(config["backbone_blocks"])
        self.multiple = 2 ** (n_stages + 2)  # the max-pooled FPN level halves the coarsest stage
        levels = [str(i) for i in range(n_stages)]
        anchors = AnchorGenerator(tuple((int(s),) for s in config["anchor_sizes"]),
                                  (tuple(float(a) for a in config["aspect_ratios"]),) * len(config["anchor_sizes"]))
        box_fc = int(config["box_head_fc"])
        self.vq = config["mask_head"] == "vq"
        latent = MASK_SIZE // 4
        if self.vq:
            mask_head: nn.Module = CodeHead(width, int(config["codebook_size"]), latent, int(config["code_head_width"]),
                                            int(config["code_head_bottleneck"]))
            mask_predictor: nn.Module = nn.Identity()
        elif config["mask_head"] == "fcn":
            layers = [int(v) for v in config["fcn_layers"]]
            mask_head, mask_predictor = MaskRCNNHeads(width, layers, 1), MaskRCNNPredictor(layers[-1], layers[-1], 1)
        else:
            raise ValueError(f"mask_head must be 'vq' or 'fcn'; got {config['mask_head']!r}")
        self.detector = MaskRCNN(
            build_backbone(config), num_classes=None,
            # The engine hands over normalised, padded images: the detector's own
            # transform (resizing, normalising) is bypassed; mean 0 / std 1 say so.
            min_size=256, max_size=4096, image_mean=[0.0], image_std=[1.0],
            rpn_anchor_generator=anchors,
            box_roi_pool=MultiScaleRoIAlign(levels, 7, 2),
            box_head=FastRCNNConvFCHead((width, 7, 7), [int(c) for c in config["box_head_conv"]], [box_fc]),
            box_predictor=FastRCNNPredictor(box_fc, 3 if config.get("fragments") else 2),  # background, cell[, fragment]
            mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2), mask_head=mask_head, mask_predictor=mask_predictor,
            rpn_batch_size_per_image=int(config["rpn_batch_size_per_image"]),
            box_batch_size_per_image=int(config["box_batch_size_per_image"]),
            box_positive_fraction=float(config["box_positive_fraction"]),
        )
        self.occlusion = OcclusionBranch(width, int(config["occlusion_width"])) if config["occlusion"] else None
        self.vqvae = None
        if self.vq:
            self.vqvae = VQVAE(int(config["codebook_size"]), int(config["code_dim"]), int(config["vq_width"]), float(config["vq_beta"]))
            self.vqvae.freeze(True)  # trained by the method's `pretrain`, then fixed
        self.refine = RefineHead(width, int(config["refine_width"])) if self.vq and config["refine"] else None
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Apply the proposal and detection settings (they may change after loading)."""
        rpn, heads = self.detector.rpn, self.detector.roi_heads
        for phase, suffix in (("training", "train"), ("testing", "test")):
            rpn._pre_nms_top_n[phase] = int(config[f"rpn_pre_nms_top_n_{suffix}"])
            rpn._post_nms_top_n[phase] = int(config[f"rpn_post_nms_top_n_{suffix}"])
        rpn.nms_thresh = float(config["rpn_nms_thresh"])
        heads.nms_thresh = float(config["box_nms_thresh"])
        heads.score_thresh = float(config["box_score_thresh"])
        heads.detections_per_img = int(config["box_detections_per_img"])

    def features(self, images: torch.Tensor) -> tuple[OrderedDict[str, torch.Tensor], torch.Tensor | None]:
        levels = self.detector.backbone(images)
        if self.occlusion is None:
            return levels, None
        return self.occlusion(levels)

    def mask_logits(self, roi_features: torch.Tensor) -> dict[str, torch.Tensor]:
        """RoI mask features -> {"mask": final logits (R, 1, S, S)} plus "codes" and "initial" for VQ."""
        heads = self.detector.roi_heads
        out = heads.mask_predictor(heads.mask_head(roi_features))
        if not self.vq:
            return {"mask": out}
        initial = self.vqvae.decode_weights(soft_codes(out))
        final = initial if self.refine is None else self.refine(roi_features, initial)
        return {"codes": out, "initial": initial, "mask": final}

    def forward(
        self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None, occlusion: torch.Tensor | None = None
    ) -> list[dict[str, torch.Tensor]] | dict[str, torch.Tensor]:
        sizes = [tuple(images.shape[-2:])] * len(images)
        image_list = ImageList(images, sizes)
        levels, occlusion_logits = self.features(images)
        if targets is None:
            return self._detect(image_list, levels)
        return self._losses(image_list, levels, targets, occlusion_logits, occlusion)

    def _detect(self, image_list: ImageList, levels: OrderedDict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        heads, sizes = self.detector.roi_heads, image_list.image_sizes
        proposals, _ = self.detector.rpn(image_list, levels)
        class_logits, box_regression = heads.box_predictor(heads.box_head(heads.box_roi_pool(levels, proposals, sizes)))
        boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)
        masks = torch.sigmoid(self.mask_logits(heads.mask_roi_pool(levels, boxes, sizes))["mask"][:, 0])
        return [{"boxes": b, "scores": s, "labels": c, "masks": m}
                for b, s, c, m in zip(boxes, scores, labels, masks.split([len(b) for b in boxes]))]

    def _losses(
        self, image_list: ImageList, levels: OrderedDict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]],
        occlusion_logits: torch.Tensor | None, occlusion: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        heads, sizes = self.detector.roi_heads, image_list.image_sizes
        proposals, terms = self.detector.rpn(image_list, levels, targets)
        proposals, matched, labels, regression = heads.select_training_samples(proposals, targets)
        class_logits, box_regression = heads.box_predictor(heads.box_head(heads.box_roi_pool(levels, proposals, sizes)))
        terms["loss_classifier"], terms["loss_box_reg"] = fastrcnn_loss(class_logits, box_regression, labels, regression)
        positive = [torch.nonzero(label > 0).reshape(-1) for label in labels]
        boxes = [p[i] for p, i in zip(proposals, positive)]
        truth = torch.cat([project_masks(t["masks"], b, m[i]) for t, b, m, i in zip(targets, boxes, matched, positive)])
        out = self.mask_logits(heads.mask_roi_pool(levels, boxes, sizes))
        if not len(truth):  # no positive RoI in the batch: mask terms are zero, the graph stays whole
            zero = out["mask"].sum() * 0
            names = (["code", "initial_mask"] + (["refine"] if self.refine is not None else [])) if self.vq else ["mask"]
            terms.update({name: zero for name in names})
        elif self.vq:
            with torch.no_grad():
                one_hot = F.one_hot(self.vqvae.encode(truth), self.vqvae.codes).permute(0, 3, 1, 2).to(out["codes"])
            # Eq. 3 sums over the K codes; averaged over positions and RoIs.
            terms["code"] = F.binary_cross_entropy_with_logits(out["codes"], one_hot, reduction="none").sum(1).mean()
            terms["initial_mask"] = F.binary_cross_entropy_with_logits(out["initial"], truth).detach()  # watched only
            if self.refine is not None:
                terms["refine"] = F.binary_cross_entropy_with_logits(out["mask"], truth)
        else:
            terms["mask"] = F.binary_cross_entropy_with_logits(out["mask"], truth)
        if occlusion_logits is not None and occlusion is not None:
            target = F.adaptive_avg_pool2d(occlusion.to(occlusion_logits), occlusion_logits.shape[-2:])
            terms["occlusion"] = F.binary_cross_entropy_with_logits(occlusion_logits, target)
        return terms
