"""Overlapping box pairs."""

"""Lovasz hinge, medoids, tiling plans, TTA consensus."""

import numpy as np


def test_overlapping_pairs_match_brute_force():
    from blastoseg.boxes import overlapping_pairs

    rng = np.random.default_rng(0)
    def boxes(n):
        y0, x0 = rng.integers(0, 200, (2, n))
        h, w = rng.integers(1, 40, (2, n))
        return np.stack([y0, x0, y0 + h, x0 + w], 1)
    a, b = boxes(300), boxes(200)
    i, j = overlapping_pairs(a, b)
    brute = (np.maximum(a[:, None, 0], b[None, :, 0]) < np.minimum(a[:, None, 2], b[None, :, 2])) & (
        np.maximum(a[:, None, 1], b[None, :, 1]) < np.minimum(a[:, None, 3], b[None, :, 3]))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(*(v.tolist() for v in np.nonzero(brute))))
    assert len(overlapping_pairs(a[:0], b)[0]) == 0
