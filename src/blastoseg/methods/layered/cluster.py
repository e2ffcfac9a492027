"""Inference half of the `layered` method: layered embeddings -> amodal instances.

Clustering is De Brabandere et al.'s greedy mean-shift (seed paper 002's ref. [3]) with
a flat L1 kernel, L1 because the discriminative loss is trained with L1 distances, so the
same margins hold at inference: a trained instance lies within delta_var (0.5) of its
mean and means lie 2 * delta_dist (3.0) apart, so a bandwidth of 1.5 both gathers an
instance and stops short of its neighbours.

Cost control without time-outs: modes are searched on a random subsample of at most
`sample` (2048) points, with `batch` seeds shifted at once (a dense seeds x subsample
distance matrix per iteration). A seed's own point is always consumed, so the search
ends after at most sample / batch rounds even on meaningless embeddings. Only the
`max_modes` modes with the most support are kept (an image holds far fewer instances),
and every point (all layers, full resolution) then takes its nearest mode within the
bandwidth, in chunks: O(P * max_modes) at worst. An instance needs a few subsample
points to be found: roughly >= 3 P / sample points of its own (~150 of 100k).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from blastoseg.instances import Instances


def _shift(centres: torch.Tensor, points: torch.Tensor, bandwidth: float, max_iter: int, tol: float) -> torch.Tensor:
    """Flat-kernel mean-shift of `centres` over `points`; each stops once it moves at most tol."""
    centres = centres.clone()
    active = torch.arange(len(centres))
    for _ in range(max_iter):
        if active.numel() == 0:
            break
        current = centres[active]
        near = (torch.cdist(current, points, p=1) < bandwidth).to(points.dtype)
        count = near.sum(1, keepdim=True)
        moved = torch.where(count > 0, near @ points / count.clamp(min=1), current)
        centres[active] = moved
        active = active[(moved - current).abs().sum(1) > tol]
    return centres


def find_modes(
    points: torch.Tensor,
    bandwidth: float,
    sample: int = 2048,
    batch: int = 64,
    max_modes: int = 128,
    max_iter: int = 30,
    tol: float = 1e-3,
    seed: int = 0,
) -> torch.Tensor:
    """(M, C) modes of (P, C) embeddings, at least `bandwidth` apart (L1), most supported first.

    Seeds are random not-yet-covered points of the subsample; a converged seed whose mode
    lies within the bandwidth of an accepted mode is the same instance and is dropped.
    Support = subsample points nearest to the mode within the bandwidth; only the
    `max_modes` best supported modes are kept, which bounds the assignment cost.
    """
    n, dims = points.shape
    if n == 0:
        return points.new_zeros((0, dims))
    generator = torch.Generator().manual_seed(seed)
    pool = points[torch.randperm(n, generator=generator)[:sample]].contiguous()
    free = torch.ones(len(pool), dtype=torch.bool)
    modes = np.zeros((0, dims), np.float32)
    while bool(free.any()):
        seeds = torch.nonzero(free).squeeze(1)[:batch]
        free[seeds] = False
        found = _shift(pool[seeds], pool, bandwidth, max_iter, tol).numpy()
        fresh = []
        for centre in found:  # at most `batch` tiny comparisons
            if len(modes) and np.abs(modes - centre).sum(1).min() < bandwidth:
                continue
            modes = np.concatenate([modes, centre[None]])
            fresh.append(centre)
        if fresh:
            covered = torch.cdist(pool, torch.from_numpy(np.stack(fresh)), p=1).min(1).values < bandwidth
            free &= ~covered
    modes_t = torch.from_numpy(modes)
    nearest = assign_to_modes(pool, modes_t, bandwidth)
    support = np.bincount(nearest[nearest >= 0], minlength=len(modes))
    order = np.argsort(-support, kind="stable")[:max_modes]
    return modes_t[torch.from_numpy(order)]


def assign_to_modes(points: torch.Tensor, modes: torch.Tensor, bandwidth: float, chunk: int = 16384) -> np.ndarray:
    """(P,) index of each point's nearest mode (L1) within the bandwidth, else -1."""
    out = np.full(len(points), -1, np.int64)
    if len(modes) == 0:
        return out
    for start in range(0, len(points), chunk):  # bounds the (chunk, M) distance matrix
        distance, index = torch.cdist(points[start : start + chunk], modes, p=1).min(1)
        out[start : start + chunk] = torch.where(distance < bandwidth, index, -1).numpy()
    return out


def occlusion_depth(planes: np.ndarray) -> np.ndarray:
    """Depth per instance from (L, H, W) layered labels 1..K (0 = empty).

    Wherever a and b share a pixel, the one in the shallower layer is a vote for "a in
    front of b". Instances are placed front to back, each time the one with the fewest
    votes from unplaced instances in front of it (this breaks cycles, keeping the
    majority of votes). depth = 0 for an instance with nothing placed in front of it,
    else 1 + the largest depth of the instances in front: the length of the longest
    occlusion chain ahead of it, so instances that never meet may share a depth.
    """
    n = int(planes.max()) if planes.size else 0
    if n == 0:
        return np.zeros(0, np.int32)
    votes = np.zeros(n * n, np.int64)
    for i in range(len(planes)):
        for j in range(i + 1, len(planes)):
            a, b = planes[i], planes[j]
            both = (a > 0) & (b > 0) & (a != b)
            votes += np.bincount((a[both].astype(np.int64) - 1) * n + b[both] - 1, minlength=n * n)
    votes = votes.reshape(n, n)
    ahead = np.maximum(votes - votes.T, 0)  # ahead[a, b] > 0: a is in front of b on balance
    pending = ahead.sum(0).astype(np.float64)  # votes from unplaced instances in front of each
    placed = np.zeros(n, bool)
    depth = np.zeros(n, np.int32)
    for _ in range(n):
        k = int(np.argmin(np.where(placed, np.inf, pending)))
        front = placed & (ahead[:, k] > 0)
        depth[k] = depth[front].max() + 1 if front.any() else 0
        placed[k] = True
        pending -= ahead[k]
    return depth


def instances_from_points(
    shape: tuple[int, int],
    n_layers: int,
    layer: np.ndarray,
    pixel: np.ndarray,
    cluster: np.ndarray,
    probability: np.ndarray,
    min_size: int,
) -> Instances:
    """Instances from clustered points: point p is pixel `pixel[p]` (flat) of layer `layer[p]`.

    cluster[p] = -1 drops the point. The amodal mask is the union over layers; clusters of
    amodal area < min_size are dropped; score = mean foreground probability of its points.
    """
    hw = shape[0] * shape[1]
    keep = cluster >= 0
    if not keep.any():
        return Instances.empty(shape)
    m = int(cluster.max()) + 1
    planes = np.zeros((n_layers, hw), np.int32)
    planes[layer[keep], pixel[keep]] = cluster[keep] + 1
    # Amodal area: a pixel counts once for a cluster, however many of its layers it holds.
    first = planes.copy()
    for j in range(1, n_layers):
        for i in range(j):
            first[j][planes[j] == planes[i]] = 0
    big = np.bincount(first.ravel(), minlength=m + 1)[1:] >= min_size
    if not big.any():
        return Instances.empty(shape)
    relabel = np.concatenate([[0], np.where(big, np.cumsum(big), 0)]).astype(np.int32)  # kept -> 1..K
    planes = relabel[planes].reshape(n_layers, *shape)
    label = relabel[np.where(keep, cluster + 1, 0)]
    counts = np.bincount(label, minlength=int(big.sum()) + 1)[1:]
    scores = np.bincount(label, weights=probability, minlength=len(counts) + 1)[1:] / np.maximum(counts, 1)
    pairs = [
        ((sl[1].start, sl[2].start, sl[1].stop, sl[2].stop), (planes[:, sl[1], sl[2]] == k).any(0))
        for k, sl in enumerate(ndimage.find_objects(planes), start=1)
    ]
    return Instances.from_masks(shape, pairs, scores=scores, depth=occlusion_depth(planes))


def cluster_layers(
    probability: torch.Tensor,
    embedding: torch.Tensor,
    bandwidth: float,
    threshold: float,
    min_size: int,
    sample: int = 2048,
    batch: int = 64,
    max_modes: int = 128,
    deep_threshold: float | None = None,
) -> Instances:
    """Instances from (L, H, W) foreground probabilities and (L, C, H, W) embeddings.

    A pixel of layer 0 is occupied above `threshold`, of deeper layers above `deep_threshold`.
    """
    n_layers, dims, h, w = embedding.shape
    cut = torch.full((n_layers, 1), float(threshold))
    cut[1:] = float(threshold if deep_threshold is None else deep_threshold)
    occupied = probability.reshape(n_layers, -1) > cut
    layer, pixel = torch.nonzero(occupied, as_tuple=True)
    points = embedding.reshape(n_layers, dims, -1)[layer, :, pixel].contiguous()  # (P, C)
    modes = find_modes(points, bandwidth, sample=sample, batch=batch, max_modes=max_modes)
    cluster = assign_to_modes(points, modes, bandwidth)
    prob = probability.reshape(n_layers, -1)[layer, pixel].numpy().astype(np.float64)
    return instances_from_points((h, w), n_layers, layer.numpy(), pixel.numpy(), cluster, prob, min_size)


def main_parts(instances: Instances, fraction: float) -> Instances:
    """Each mask without its connected parts (8-connected) smaller than `fraction` of its
    largest: pixels the clustering gave an instance away from its body, which its convex
    hull would otherwise span."""
    pairs = []
    for box, mask in zip(instances.boxes, instances.masks):
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
        if n > 1:
            sizes = np.bincount(labels.ravel())[1:]
            mask = np.isin(labels, 1 + np.flatnonzero(sizes >= fraction * sizes.max()))
        pairs.append((tuple(int(v) for v in box), mask))
    return Instances.from_masks(instances.shape, pairs, instances.scores, instances.depth)
