"""Masks found at a working size come back to the frame with smooth outlines."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops

from blastoseg.inference.predict import to_frame_size
from blastoseg.instances import Instances


def circularity(mask: np.ndarray) -> float:
    props = regionprops(mask.astype(np.uint8))[0]
    return 4 * np.pi * props.area / props.perimeter**2


def disc(shape: tuple[int, int], centre: tuple[float, float], radius: float, pixel: float = 1.0) -> np.ndarray:
    """The pixels of a grid with pixels `pixel` wide whose centres lie in the disc."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy + 0.5) * pixel - centre[0]) ** 2 + ((xx + 0.5) * pixel - centre[1]) ** 2 <= radius**2


def test_a_disc_found_at_a_fifth_of_the_size_comes_back_round():
    true = disc((800, 800), (400.3, 399.6), 120)
    small = Instances.from_mask_stack(disc((160, 160), (400.3, 399.6), 120, pixel=5)[None])
    back = to_frame_size(small, (800, 800))
    assert back.shape == (800, 800)
    expected = circularity(true)
    assert expected == pytest.approx(0.905, abs=0.01)
    assert abs(circularity(back.mask(0)) - expected) <= 0.03
    assert abs(back.areas()[0] - true.sum()) / true.sum() < 0.005
    assert np.count_nonzero(back.mask(0) != true) < 0.02 * true.sum()  # the same disc, not just as round
    # what nearest-neighbour enlargement gave: 5 px stair steps
    assert circularity(small.resized((800, 800)).mask(0)) < 0.7


def test_a_disc_with_a_ragged_working_outline_comes_back_round():
    """What a network gives at its working size: the outline off by a pixel here and there
    (views voting, thresholds). Enlarged, the pixel steps must not become notches."""
    rng = np.random.default_rng(1)
    true = disc((800, 800), (400.3, 399.6), 120)
    small = disc((160, 160), (400.3, 399.6), 120, pixel=5)
    edge = small ^ ndi.binary_erosion(small)
    ragged = small.copy()
    ragged[edge & (rng.random(small.shape) < 0.3)] = False  # a third of the outline pixels missed
    grown = ndi.binary_dilation(small) & ~small
    ragged[grown & (rng.random(small.shape) < 0.3)] = True  # and as many pixels beyond it taken
    back = to_frame_size(Instances.from_mask_stack(ragged[None]), (800, 800))
    assert abs(circularity(back.mask(0)) - circularity(true)) <= 0.03
    assert abs(back.areas()[0] - true.sum()) / true.sum() < 0.02


def test_same_size_shrinking_and_small_specks_are_unchanged():
    rng = np.random.default_rng(0)
    stack = np.zeros((3, 40, 50), bool)
    stack[0, 5:20, 10:30] = True
    stack[1] = rng.random((40, 50)) > 0.7
    stack[2, 33, 44] = True  # one pixel: smooth interpolation keeps it
    inst = Instances.from_mask_stack(stack, scores=[0.3, 0.6, 0.9], depth=[2, 0, 1])
    assert to_frame_size(inst, (40, 50)) is inst
    assert inst.resized((40, 50), smooth=True) == inst
    assert inst.resized((20, 25), smooth=True) == inst.resized((20, 25))
    up = to_frame_size(inst, (80, 100))
    assert len(up) == 3 and np.array_equal(up.scores, inst.scores) and np.array_equal(up.depth, inst.depth)
    assert up.areas()[2] > 0
    # a solid shape's box stays where the nearest-neighbour one is, up to the pixel the
    # outline smooths off; speckle is smoothed into fewer pixels, never beyond its box
    near = inst.resized((80, 100))
    assert np.all(np.abs(up.boxes[[0, 2]].astype(int) - near.boxes[[0, 2]].astype(int)) <= 1)
    assert np.all(up.boxes[1, :2] >= near.boxes[1, :2]) and np.all(up.boxes[1, 2:] <= near.boxes[1, 2:])
