"""The VQ-VAE shape prior of `vqshape` (seed paper 001, section 3).

A mask crop (S x S, S = 28, the mask head's resolution) is encoded to an M x M grid
(M = S / 4) of D-dimensional vectors, each replaced by its nearest of K codebook
vectors, and decoded back to S x S mask logits. Loss (Eq. 1): reconstruction
(binary cross-entropy, as the paper's text says) + codebook ||sg[e] - q||^2 +
beta ||e - sg[q]||^2, beta = 0.25; gradients pass the quantiser straight through.
Codes unused for `restart_every` steps are restarted on random encoder outputs of the
current batch (dead-code restarts), so the whole codebook stays in use.

No normalisation layers: the frozen VQ-VAE then behaves the same in the detector's
train and eval modes. Training crops come from ground-truth amodal masks resampled on
jittered boxes (`mask_crops`), because the mask head encodes ground truth on region
proposals, not on the exact ground-truth boxes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import roi_align

from blastoseg.instances import Instances


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation with the codebook and commitment terms of Eq. 1."""

    def __init__(self, codes: int, dim: int, beta: float = 0.25) -> None:
        super().__init__()
        self.beta = beta
        self.codebook = nn.Parameter(torch.empty(codes, dim).uniform_(-1 / codes, 1 / codes))
        # Codes chosen since the last restart; not saved (only training needs it).
        self.register_buffer("usage", torch.zeros(codes), persistent=False)

    def indices(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, D, M, M) -> (B, M, M) index of the nearest code."""
        flat = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        distance = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None])
        return distance.argmin(1).reshape(latents.shape[0], *latents.shape[2:])

    def lookup(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, K, M, M) weights over codes (one-hot or soft) -> (B, D, M, M) vectors."""
        return torch.einsum("bkyx,kd->bdyx", weights, self.codebook)

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantised latents (straight-through), code indices, and the two codebook loss terms."""
        index = self.indices(latents)
        quantised = self.codebook[index].permute(0, 3, 1, 2)
        terms = {
            "codebook": F.mse_loss(quantised, latents.detach()),
            "commitment": self.beta * F.mse_loss(latents, quantised.detach()),
        }
        if self.training:
            self.usage += torch.bincount(index.reshape(-1), minlength=len(self.usage)).to(self.usage)
        # Straight-through: the decoder's gradient reaches the encoder unchanged.
        return latents + (quantised - latents).detach(), index, terms

    @torch.no_grad()
    def restart_dead(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Move every code unused since the last restart onto a random latent of `latents`; returns how many."""
        dead = torch.nonzero(self.usage == 0).reshape(-1)
        flat = latents.detach().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        if len(dead) and len(flat):
            pick = torch.randint(len(flat), (len(dead),), generator=generator).to(flat.device)
            noise = torch.randn(len(dead), flat.shape[1], generator=generator).to(flat) * 1e-3
            self.codebook[dead] = flat[pick] + noise
        self.usage.zero_()
        return len(dead)


class VQVAE(nn.Module):
    """S x S mask logits <-> M x M codes (S = 4 M); `trained` marks a finished pre-training."""

    def __init__(self, codes: int = 64, dim: int = 32, width: int = 32, beta: float = 0.25) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, dim, 1),
        )
        self.quantizer = VectorQuantizer(codes, dim, beta)
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, 2 * w, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, 1, 4, 2, 1),
        )
        self.register_buffer("trained", torch.zeros((), dtype=torch.uint8))

    @property
    def codes(self) -> int:
        return self.quantizer.codebook.shape[0]

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) masks in [0, 1] -> (B, M, M) code indices."""
        return self.quantizer.indices(self.encoder(masks * 2 - 1))

    def decode_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, K, M, M) weights over codes -> (B, 1, S, S) mask logits."""
        return self.decoder(self.quantizer.lookup(weights))

    def forward(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruction logits, code indices and the loss terms of Eq. 1 ("total" included)."""
        latents = self.encoder(masks * 2 - 1)  # centred input: an empty crop is not all zeros
        quantised, index, terms = self.quantizer(latents)
        logits = self.decoder(quantised)
        terms["reconstruction"] = F.binary_cross_entropy_with_logits(logits, masks)
        terms["total"] = terms["reconstruction"] + terms["codebook"] + terms["commitment"]
        return logits, index, terms

    def freeze(self, frozen: bool = True) -> None:
        for parameter in self.parameters():
            parameter.requires_grad_(not frozen)


def mask_crops(
    instances: Sequence[Instances],
    size: int = 28,
    jitter: float = 0.0,
    copies: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(R, 1, size, size) amodal masks resampled on their boxes, each edge moved by up to
    `jitter` x the box side (`copies` boxes per instance; the first copy is exact)."""
    crops = []
    for inst in instances:
        if not len(inst):
            continue
        masks = torch.from_numpy(inst.to_mask_stack()).float()[:, None]
        boxes = torch.from_numpy(inst.boxes[:, [1, 0, 3, 2]]).float()  # x0, y0, x1, y1
        boxes = boxes.repeat(copies, 1)
        sides = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
        shift = (torch.rand(boxes.shape, generator=generator) * 2 - 1) * jitter * sides
        shift[: len(inst)] = 0
        owner = torch.arange(len(inst)).repeat(copies).float()
        crops.append(roi_align(masks, torch.cat([owner[:, None], boxes + shift], 1), size, 1.0, 2, aligned=True))
    return torch.cat(crops) if crops else torch.zeros(0, 1, size, size)


@torch.no_grad()
def reconstruction_report(vqvae: VQVAE, masks: torch.Tensor, batch: int = 512) -> dict[str, float]:
    """Mean IoU of masks (> 0.5) with their reconstructions, and the codebook's use:
    the fraction of codes used and the perplexity (exp of the codes' entropy)."""
    was_training = vqvae.training
    vqvae.eval()
    ious, counts = [], torch.zeros(vqvae.codes)
    device = vqvae.quantizer.codebook.device
    for start in range(0, len(masks), batch):
        chunk = masks[start : start + batch].to(device)
        logits, index, _ = vqvae(chunk)
        truth, found = chunk > 0.5, logits > 0
        inter = (truth & found).sum((1, 2, 3)).float()
        union = (truth | found).sum((1, 2, 3)).float()
        ious.append(torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).cpu())
        counts += torch.bincount(index.reshape(-1).cpu(), minlength=vqvae.codes).float()
    vqvae.train(was_training)
    if not ious:
        return {"reconstruction_iou": float("nan"), "codebook_usage": 0.0, "perplexity": 0.0, "masks": 0}
    p = counts / counts.sum().clamp(min=1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {
        "reconstruction_iou": round(float(torch.cat(ious).mean()), 4),
        "codebook_usage": round(float((counts > 0).float().mean()), 4),
        "perplexity": round(float(entropy.exp()), 2),
        "masks": int(len(masks)),
    }


def pretrain_steps(
    vqvae: VQVAE,
    batches: Iterator[Sequence[Instances]],
    device: torch.device,
    lr: float = 1e-3,
    jitter: float = 0.15,
    copies: int = 4,
    restart_every: int = 50,
    seed: int = 0,
) -> Iterator[dict[str, float]]:
    """Train `vqvae` on the amodal masks of `batches`, one optimiser step per batch; yields
    the loss terms plus running reconstruction IoU. Runs until the caller stops iterating."""
    generator = torch.Generator().manual_seed(seed)
    vqvae.freeze(False)
    vqvae.train()
    optimiser = torch.optim.Adam(vqvae.parameters(), lr=lr)
    step = 0
    for instances in batches:
        masks = mask_crops(instances, jitter=jitter, copies=copies, generator=generator).to(device)
        if not len(masks):
            continue
        logits, _, terms = vqvae(masks)
        optimiser.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimiser.step()
        step += 1
        if step % restart_every == 0:
            with torch.no_grad():
                terms["restarted"] = torch.tensor(float(vqvae.quantizer.restart_dead(vqvae.encoder(masks * 2 - 1), generator)))
        with torch.no_grad():
            truth, found = masks > 0.5, logits > 0
            union = (truth | found).sum((1, 2, 3)).clamp(min=1)
            terms["iou"] = ((truth & found).sum((1, 2, 3)) / union).mean()
        yield {f"vq_{k}" if k != "total" else k: float(v.detach()) for k, v in terms.items()}
