"""Merging instances found more than once: the views of test-time augmentation, and tiles' seams.

Dense methods' views are merged as "fields" (maps averaged, post-processed once) or as
"instances": the consensus of the views' instance sets, used where raw maps cannot be
averaged (colours or embeddings that permute between views) and for detectors.
Instances of different views and of one class are matched by IoU >= 0.5, an instance found in at least
`min_votes` views is kept, its mask is the pixel majority of its matches and its
confidence the fraction of views that found it. Seams of tiles and a detector's
overlapping detections are de-duplicated by `merge_duplicates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from blastoseg.instances import Instances

if TYPE_CHECKING:
    import torch

    from blastoseg.methods.base import Config, DenseMethod


def consensus(sets: Sequence[Instances], min_votes: int = 4, iou_threshold: float = 0.5) -> Instances:
    """Merge the instance sets of the views of one image into one set."""
    if not sets:
        raise ValueError("consensus needs at least one instance set")
    shape = sets[0].shape
    pooled = Instances.concatenate(list(sets), shape=shape)
    view = np.concatenate([np.full(len(s), v) for v, s in enumerate(sets)]).astype(int)
    if len(pooled) == 0:
        return pooled
    iou = pooled.iou(pooled)
    unassigned = np.ones(len(pooled), bool)
    pairs, scores, depths, classes = [], [], [], []
    for seed in np.argsort(-pooled.scores, kind="stable"):
        if not unassigned[seed]:
            continue
        members = [seed]
        unassigned[seed] = False
        for v in range(len(sets)):
            if v == view[seed]:
                continue
            same = (view == v) & unassigned & (pooled.classes == pooled.classes[seed])
            candidates = np.flatnonzero(same & (iou[seed] >= iou_threshold))
            if candidates.size:
                best = candidates[np.argmax(iou[seed, candidates])]
                members.append(best)
                unassigned[best] = False
        if len(members) < min_votes:
            continue
        boxes = pooled.boxes[members]
        y0, x0 = boxes[:, :2].min(0)
        y1, x1 = boxes[:, 2:].max(0)
        votes = np.zeros((y1 - y0, x1 - x0), np.int32)
        for m in members:
            b = pooled.boxes[m]
            votes[b[0] - y0 : b[2] - y0, b[1] - x0 : b[3] - x0] += pooled.masks[m]
        pairs.append(((int(y0), int(x0), int(y1), int(x1)), votes * 2 > len(members)))
        scores.append(len(members) / len(sets) * float(pooled.scores[members].mean()))
        depths.append(int(np.round(np.median(pooled.depth[members]))))
        classes.append(int(pooled.classes[seed]))
    return Instances.from_masks(shape, pairs, scores=scores, depth=depths, classes=classes)


def own_part_depth(instances: Instances, i: int, j: int) -> float:
    """How deep the thinner of the parts of masks i and j that the other does not cover
    reaches (the largest distance from its edge, in px; 0 if one mask covers the other)."""
    pair = instances[[i, j]]
    y0, x0 = pair.boxes[:, :2].min(0)
    y1, x1 = pair.boxes[:, 2:].max(0)
    a, b = pair.cropped(y0 - 1, x0 - 1, y1 + 1, x1 + 1).to_mask_stack()  # a margin: the frame is not an edge
    return float(min(ndimage.distance_transform_edt(a & ~b).max(), ndimage.distance_transform_edt(b & ~a).max()))


def merge_duplicates(
    instances: Instances, iou_threshold: float = 0.5, groups: np.ndarray | None = None,
    stacked: tuple[float, float] | None = None,
) -> Instances:
    """Drop the lower-scored of any pair of instances of one class with IoU >= threshold.

    groups: one label per instance (e.g. its tile): only pairs from different groups are
    compared (each group was de-duplicated already, by its method's own rule).
    stacked: (part, certain). A pair below IoU `certain` is two cells stacked in depth,
    not one found twice, when each mask keeps a part of its own reaching `part` x its
    radius deep: the crescent of the cell behind. A detector's duplicates of one cell
    differ by a rim.
    """
    if len(instances) < 2:
        return instances
    # Sparse: only instances whose boxes overlap are compared, so 60k nuclei cost seconds.
    rows, cols, inter = instances.intersections(instances)
    areas = instances.areas()
    union = areas[rows] + areas[cols] - inter
    duplicate = (rows != cols) & (inter >= iou_threshold * np.maximum(union, 1))
    duplicate &= instances.classes[rows] == instances.classes[cols]
    if groups is not None:
        duplicate &= groups[rows] != groups[cols]
    if stacked is not None:
        part, certain = stacked
        for k in np.flatnonzero(duplicate & (rows < cols) & (inter < certain * np.maximum(union, 1))):
            i, j = int(rows[k]), int(cols[k])
            radius = np.sqrt(min(areas[i], areas[j]) / np.pi)
            if own_part_depth(instances, i, j) >= part * radius:
                duplicate[(rows == i) & (cols == j) | (rows == j) & (cols == i)] = False
    neighbours: list[list[int]] = [[] for _ in range(len(instances))]
    for i, j in zip(rows[duplicate].tolist(), cols[duplicate].tolist()):
        neighbours[i].append(j)
    order = np.argsort(-instances.scores, kind="stable")
    keep = np.ones(len(instances), bool)
    for i in order:
        # Visiting by falling score, a kept instance only suppresses weaker ones.
        if keep[i]:
            keep[neighbours[i]] = False
    return instances[np.flatnonzero(keep)]


def merge_views(method: DenseMethod, views: torch.Tensor, config: Config, min_votes: int = 4) -> Instances:
    """Instances from the (V, C, H, W) activated maps of a tile's views (V = 1 without TTA),
    merged by the method's rule: averaged maps post-processed once, or the consensus of
    each view's instances."""
    if method.tta_merge_for(config) == "fields":
        found = method.postprocess(views.mean(0), config)
        if len(views) > 1 and len(found):
            agreement = method.view_agreement(views, found, config)
            found = found if agreement is None else found.with_scores(agreement)
        return found
    return agreed([method.postprocess(v, config) for v in views], min_votes)


def agreed(sets: list[Instances], min_votes: int = 4) -> Instances:
    """The one set of a single view, or the consensus of several views' sets."""
    return sets[0] if len(sets) == 1 else consensus(sets, min_votes=min_votes)
