"""Merging instances: seam de-duplication and the TTA consensus."""

"""Lovasz hinge, medoids, tiling plans, TTA consensus."""

import numpy as np

from blastoseg.inference.merging import consensus
from blastoseg.inference.tiling import merge_duplicates
from blastoseg.instances import Instances


def _square(shape, y, x, s, score=1.0):
    m = np.zeros(shape, bool)
    m[y : y + s, x : x + s] = True
    return m


def test_merge_duplicates_keeps_the_best_scored():
    stack = np.stack([_square((20, 20), 2, 2, 6), _square((20, 20), 2, 3, 6), _square((20, 20), 12, 12, 4)])
    inst = Instances.from_mask_stack(stack, scores=[0.5, 0.9, 0.7])
    kept = merge_duplicates(inst)
    assert np.allclose(sorted(kept.scores), [0.7, 0.9])


def test_consensus_votes_and_majority_mask():
    shape = (20, 20)
    a = _square(shape, 2, 2, 6)
    b = _square(shape, 2, 3, 6)  # IoU with a = 30/42
    lonely = _square(shape, 14, 14, 3)
    sets = [Instances.from_mask_stack(np.stack([a]))] * 3 + [Instances.from_mask_stack(np.stack([b, lonely]))] * 2
    sets += [Instances.empty(shape)] * 3
    merged = consensus(sets, min_votes=4)
    assert len(merged) == 1  # the lonely square is found in only 2 of 8 views
    assert np.array_equal(merged.mask(0), a)  # 3 of 5 votes for a's pixels
    assert np.isclose(merged.scores[0], 5 / 8)


def test_consensus_and_duplicates_keep_classes_apart():
    from blastoseg.inference.merging import consensus, merge_duplicates
    from blastoseg.instances import CELL, FRAGMENT

    disc = np.zeros((1, 40, 40), bool)
    disc[0, 10:20, 10:20] = True
    cell = Instances.from_mask_stack(disc)
    fragment = cell.with_class(FRAGMENT).with_scores(np.array([0.5], np.float32))
    both = Instances.concatenate([cell, fragment])
    assert len(merge_duplicates(both)) == 2  # one place, two classes: no duplicate
    merged = consensus([both] * 4, min_votes=3)
    assert sorted(merged.classes.tolist()) == [CELL, FRAGMENT]
