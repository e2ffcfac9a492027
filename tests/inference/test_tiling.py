"""Tile plans."""

"""Lovasz hinge, medoids, tiling plans, TTA consensus."""

import numpy as np

from blastoseg.inference.tiling import plan_tiles


def test_tile_cores_partition_the_image():
    for shape, tile, overlap in [((100, 130), 64, 16), ((64, 64), 64, 16), ((1000, 257), 256, 64)]:
        count = np.zeros(shape, int)
        for t in plan_tiles(shape, tile, overlap):
            count[t.core[0] : t.core[2], t.core[1] : t.core[3]] += 1
            assert t.y1 - t.y0 <= tile and t.x1 - t.x0 <= tile
            assert t.y0 <= t.core[0] and t.core[2] <= t.y1
        assert (count == 1).all()
