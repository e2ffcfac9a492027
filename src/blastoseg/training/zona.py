"""Training of the zona localiser (`inference.zona_net`) on synthetic frames only.

    python -m blastoseg.training.zona -o models/stages/zona.safetensors [--steps 4000] [--pool 6000]

A pool of synthetic frames (acquisitions: well views, cut and off-centre embryos, text,
debris, JPEG, four modalities; clean crops; 8 % wells with no embryo; 8 % of the embryos cut
beyond their centre; some not square) is rendered once and shrunk
as at inference; each step draws a batch from it with a D4 view, gamma, contrast and noise of
its own. Validation is a second pool from another seed: the score is the mean IoU of the
fitted outer disc with the true one, and the file written is the best by it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from blastoseg.inference.zona_net import (
    FORMAT,
    NET,
    SIDE,
    build_net,
    fit_circles,
    shrink,
)

if TYPE_CHECKING:
    from torch import nn

EMPTY = 0.08  # of the pool: wells with no embryo, which must give none
# Of the embryos: the frame cut further, so that the embryo's centre lies beyond its edge
# (acquisitions cut at most half the embryo away). Without them the network's map
# tapered where such a zona meets the edge, and the circle fitted to it came out ~10 % small.
DEEP_CUT = 0.08
_SHAPES = ((256, 256), (256, 256), (256, 256), (256, 256), (256, 192), (192, 256), (320, 240))


def make_pool(n: int, seed: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images float16 (n, SIDE, SIDE), labels uint8 (n, SIDE, SIDE) with 1 zona, 2 inside,
    shapes int (n, 2): the top-left part of each that is frame, the rest padding)."""
    from blastoseg.synth import synth_dish, synth_embryo

    rng = np.random.default_rng(seed)
    images = np.zeros((n, SIDE, SIDE), np.float16)
    labels = np.zeros((n, SIDE, SIDE), np.uint8)
    shapes = np.zeros((n, 2), np.int64)
    start = time.time()
    for i in range(n):
        shape = _SHAPES[rng.integers(len(_SHAPES))]
        kind = rng.random()
        if kind < EMPTY:
            sample = synth_dish(shape, seed=rng)
        else:
            sample = synth_embryo(shape, seed=rng, acquisition=bool(kind < 0.85))
        image, zona = sample.image, sample.zona
        if kind >= EMPTY and rng.random() < DEEP_CUT:
            image, zona = deep_cut(image, zona, rng)
        shrunk = shrink(image)
        images[i], shapes[i] = shrunk.pixels, shrunk.shape
        labels[i] = shrink(zona, order=0).pixels
        if progress and (i + 1) % 500 == 0:
            print(f"pool {seed}: {i + 1}/{n} frames, {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    return images, labels, shapes


def deep_cut(image: np.ndarray, zona: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The frame and its zona labels cut along one side so that the embryo's centre lies
    0-0.3 radii beyond the new edge; unchanged when the frame already cuts the zona or the
    window would be under 32 px."""
    ys, xs = np.nonzero(zona)
    h, w = zona.shape
    if not len(ys) or ys.min() == 0 or xs.min() == 0 or ys.max() == h - 1 or xs.max() == w - 1:
        return image, zona
    cy, cx, r = ys.mean(), xs.mean(), np.sqrt(len(ys) / np.pi)
    beyond = rng.uniform(0.0, 0.3) * r
    y0, x0, y1, x1 = 0, 0, h, w
    side = int(rng.integers(4))
    if side == 0:
        y0 = int(np.ceil(cy + beyond))
    elif side == 1:
        x1 = int(cx - beyond)
    elif side == 2:
        y1 = int(cy - beyond)
    else:
        x0 = int(np.ceil(cx + beyond))
    if y1 - y0 < 32 or x1 - x0 < 32:
        return image, zona
    return image[y0:y1, x0:x1], zona[y0:y1, x0:x1]


def _batch(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, size: int):
    import torch

    idx = rng.integers(len(images), size=size)
    x = images[idx].astype(np.float32)
    y = np.stack([labels[idx] >= 1, labels[idx] == 2], 1).astype(np.float32)
    for k in range(size):
        g = rng.integers(8)
        x[k] = np.rot90(x[k], g % 4)
        y[k] = np.rot90(y[k], g % 4, axes=(1, 2))
        if g >= 4:
            x[k], y[k] = x[k][:, ::-1], y[k][:, :, ::-1]
        frame = x[k] > 0
        v = np.clip(x[k], 0, 1) ** rng.uniform(0.6, 1.6)
        v = (v - 0.5) * rng.uniform(0.6, 1.4) + 0.5 + rng.uniform(-0.1, 0.1)
        v = v + rng.normal(0, rng.uniform(0, 0.03), v.shape)
        x[k] = np.where(frame, np.clip(v, 0, 1), 0)  # padding stays black, as at inference
    return torch.from_numpy(np.ascontiguousarray(x[:, None])), torch.from_numpy(np.ascontiguousarray(y))


def _loss(logits, target):
    import torch
    from torch.nn import functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((2, 3)) + target.sum((2, 3)) + 1)
    return bce + dice.mean()


def validate(net: nn.Module, images: np.ndarray, labels: np.ndarray, shapes: np.ndarray) -> float:
    """Mean IoU of the fitted outer disc with the true region inside the zona's outer edge,
    both on the frame's part of the network's square, as `predict_zona` fits it."""
    import torch

    net.eval()
    ious = []
    with torch.inference_mode():
        for start in range(0, len(images), 32):
            x = torch.from_numpy(images[start : start + 32].astype(np.float32)[:, None])
            p = torch.sigmoid(net(x)).numpy()
            for k in range(len(x)):
                h, w = shapes[start + k]
                truth = labels[start + k, :h, :w] >= 1
                fitted = fit_circles(p[k, 0, :h, :w], p[k, 1, :h, :w])
                if fitted is None or not truth.any():  # an empty well is right only when nothing is found
                    ious.append(float(fitted is None and not truth.any()))
                    continue
                yy, xx = np.ogrid[:h, :w]
                disc = np.hypot(yy - fitted[0], xx - fitted[1]) <= fitted[2]
                ious.append(float((disc & truth).sum() / max((disc | truth).sum(), 1)))
    net.train()
    return float(np.mean(ious))


def train(out: Path, steps: int, pool: int, val: int, seed: int, lr: float, batch: int, command: str) -> dict:
    import torch

    from blastoseg.checkpoint import write_weights

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, labels, _ = make_pool(pool, seed)
    val_images, val_labels, val_shapes = make_pool(val, seed + 1)
    net = build_net()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    best, start, running = -1.0, time.time(), None
    for step in range(1, steps + 1):
        x, y = _batch(images, labels, rng, batch)
        loss = _loss(net(x), y)
        if not torch.isfinite(loss):
            raise RuntimeError(f"zona training stopped at step {step}: the loss is not finite; lower --lr")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = value if running is None else 0.95 * running + 0.05 * value
        if step % 250 == 0 or step == steps:
            score = validate(net, val_images, val_labels, val_shapes)
            elapsed = time.time() - start
            print(json.dumps({"step": step, "loss": round(running, 4), "val_disc_iou": round(score, 4),
                              "minutes": round(elapsed / 60, 1)}), flush=True)
            if score > best:
                best = score
                meta = {"format": FORMAT, "stage": "zona", "net": NET, "side": SIDE,
                        "training": {"command": command, "steps": step, "pool": pool, "seed": seed, "lr": lr,
                                     "batch": batch},
                        "scores": {"synthetic_val_disc_iou": round(score, 4), "val_frames": val}}
                out.parent.mkdir(parents=True, exist_ok=True)
                write_weights(out, net, meta)
    return {"best_val_disc_iou": best, "minutes": round((time.time() - start) / 60, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--pool", type=int, default=6000)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)
    command = "python -m blastoseg.training.zona " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps(train(args.out, args.steps, args.pool, args.val, args.seed, args.lr, args.batch, command)))


if __name__ == "__main__":
    main()
