"""Merging instances: seam de-duplication, stacked cells and the TTA consensus."""

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


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_two_cells_stacked_in_depth_are_not_one_found_twice():
    from blastoseg.inference.merging import merge_duplicates

    shape = (80, 80)
    front, behind = _disc(shape, 40, 35, 20), _disc(shape, 40, 45, 20)  # IoU 0.52; each keeps a crescent 5 px deep
    pair = Instances.from_mask_stack(np.stack([front, behind]), scores=[0.9, 0.8])
    assert pair.iou(pair)[0, 1] >= 0.5
    assert len(merge_duplicates(pair, 0.5)) == 1  # the plain rule takes them for one cell
    assert len(merge_duplicates(pair, 0.5, stacked=(0.2, 0.85))) == 2
    assert len(merge_duplicates(pair, 0.5, stacked=(0.3, 0.85))) == 1  # 5 px is a quarter of the radius

    rim = Instances.from_mask_stack(np.stack([_disc(shape, 40, 40, 20), _disc(shape, 40, 40, 22)]), scores=[0.9, 0.8])
    assert len(merge_duplicates(rim, 0.5, stacked=(0.2, 0.85))) == 1  # one cell, outlined twice: a rim apart
    near = Instances.from_mask_stack(np.stack([front, _disc(shape, 40, 37, 20)]), scores=[0.9, 0.8])
    assert len(merge_duplicates(near, 0.5, stacked=(0.01, 0.85))) == 1  # above `certain` IoU: one cell


def test_groups_only_merge_across_groups():
    from blastoseg.inference.merging import merge_duplicates

    a = _square((20, 20), 2, 2, 6)
    inst = Instances.from_mask_stack(np.stack([a, a, a]), scores=[0.9, 0.8, 0.7])
    kept = merge_duplicates(inst, groups=np.array([0, 0, 1]))
    assert np.allclose(sorted(kept.scores), [0.8, 0.9])  # the other tile's copy goes; the tile's own two stay
