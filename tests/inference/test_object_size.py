"""Object sizes: what training records and when predict rescales, on hand-made discs."""

import numpy as np
import pytest

from blastoseg.inference import object_size
from blastoseg.instances import Instances


def disc_instances(diameters, shape=(256, 256)):
    pairs = []
    for i, d in enumerate(diameters):
        r = d / 2
        yy, xx = np.mgrid[: int(np.ceil(d)) + 2, : int(np.ceil(d)) + 2]
        mask = (yy - r - 0.5) ** 2 + (xx - r - 0.5) ** 2 <= r**2
        y0 = (i * 37) % (shape[0] - mask.shape[0])
        pairs.append(((y0, 0, y0 + mask.shape[0], mask.shape[1]), mask))
    return Instances.from_masks(shape, pairs)


def test_median_diameter_is_that_of_a_disc_of_equal_area():
    found = disc_instances([10, 20, 30])
    assert object_size.median_diameter(found) == pytest.approx(20, rel=0.05)
    assert np.isnan(object_size.median_diameter(Instances.empty((8, 8))))


def test_training_sizes_span_the_images_and_at_least_one_and_a_half_times_the_median():
    sizes = object_size.training_sizes([disc_instances([d, d]) for d in (10, 12, 14, 16, 40)])
    assert sizes["median"] == pytest.approx(14, rel=0.05)
    low, high = sizes["range"]
    assert 9 < low < 10.5 and 34 < high < 40
    one = object_size.training_sizes([disc_instances([20, 20])])["range"]  # one image: median / 1.5 .. x 1.5
    assert one[0] == pytest.approx(20 / 1.5, rel=0.05) and one[1] == pytest.approx(30, rel=0.05)
    with pytest.raises(ValueError, match="no objects"):
        object_size.training_sizes([Instances.empty((8, 8))])


def test_target_scale_shrinks_objects_above_the_range_just_inside_it():
    sizes = {"median": 20.0, "range": [10.0, 40.0]}
    assert object_size.target_scale(disc_instances([30, 30, 30]), sizes) == 1.0
    # 80 px objects go to 40 / 1.2 px; small objects are never enlarged
    assert object_size.target_scale(disc_instances([80, 80, 80]), sizes) == pytest.approx(40 / 1.2 / 80, rel=0.05)
    assert object_size.target_scale(disc_instances([5, 5, 5]), sizes) == 1.0
    # measured in a frame already shrunk to 0.8: 0.8 x 33.3 / 80 of the frame in all
    assert object_size.target_scale(disc_instances([80, 80, 80]), sizes, scale=0.8) == pytest.approx(0.8 * 40 / 1.2 / 80, rel=0.05)
    # a frame already shrunk to 0.5 may shrink to 0.25 at most
    assert object_size.target_scale(disc_instances([80, 80, 80]), sizes, scale=0.5) == 0.25
    assert object_size.target_scale(disc_instances([80, 80]), sizes) == 1.0  # too few to judge
    assert object_size.target_scale(disc_instances([80, 80, 80]), None) == 1.0  # no record
    assert object_size.target_scale(disc_instances([30, 30, 30]), sizes, scale=0.6) == 0.6  # in range: stays
