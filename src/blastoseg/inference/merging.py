"""The `instances` TTA merge: consensus of several instance sets of one image.

Used where raw maps cannot be averaged (colours or embeddings that permute between
views). Instances of different views are matched by IoU >= 0.5, an instance found in
at least `min_votes` views is kept, its mask is the pixel majority of its matches and
its confidence the fraction of views that found it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blastoseg.instances import Instances


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
    pairs, scores, depths = [], [], []
    for seed in np.argsort(-pooled.scores, kind="stable"):
        if not unassigned[seed]:
            continue
        members = [seed]
        unassigned[seed] = False
        for v in range(len(sets)):
            if v == view[seed]:
                continue
            candidates = np.flatnonzero((view == v) & unassigned & (iou[seed] >= iou_threshold))
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
    return Instances.from_masks(shape, pairs, scores=scores, depth=depths)
