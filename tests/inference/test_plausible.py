"""Which found instances can be blastomeres: inside the zona, and not a cluster of others."""

import numpy as np

from blastoseg.inference.plausible import clusters, inside_fraction, plausible_cells
from blastoseg.instances import Instances


def _disc(shape, cy, cx, r):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_a_mask_holding_two_cells_is_a_cluster_but_overlapping_cells_are_not():
    shape = (120, 160)
    left, right = _disc(shape, 60, 55, 25), _disc(shape, 60, 95, 25)  # overlapping amodal cells
    union = _disc(shape, 60, 75, 50)  # the whole embryo called a cell
    hidden = _disc(shape, 60, 130, 12)
    cells = Instances.from_mask_stack(np.stack([left, right, union, hidden]))
    assert clusters(cells).tolist() == [False, False, True, False]
    assert len(plausible_cells(cells, None)) == 3
    # Two cells, one of them mostly hidden behind the other, are both kept.
    pair = Instances.from_mask_stack(np.stack([_disc(shape, 60, 60, 30), _disc(shape, 60, 70, 15)]))
    assert not clusters(pair).any()


def test_cells_mostly_outside_the_zona_are_dropped():
    shape = (100, 100)
    zona_inside = _disc(shape, 50, 50, 35)
    inside, rim, outside = _disc(shape, 50, 45, 15), _disc(shape, 50, 78, 12), _disc(shape, 10, 10, 8)
    cells = Instances.from_mask_stack(np.stack([inside, rim, outside]))
    fraction = inside_fraction(cells, zona_inside)
    assert fraction[0] == 1.0 and 0.5 < fraction[1] < 1.0 and fraction[2] == 0.0
    kept = plausible_cells(cells, zona_inside)
    assert len(kept) == 2 and kept.iou(cells[[0, 1]]).diagonal().min() == 1.0
