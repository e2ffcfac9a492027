"""Tile plans and stitching."""

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


def test_stitching_keeps_what_one_tile_found_and_merges_across_seams():
    from blastoseg.inference.tiling import segment_tiled
    from blastoseg.instances import Instances

    def overlapping_pair(tile: np.ndarray) -> Instances:
        a = np.zeros(tile.shape, bool)
        a[10:30, 10:30] = True
        b = np.roll(a, 4, axis=1)  # IoU 0.67 with a: two cells in depth, as the method decided
        return Instances.from_mask_stack(np.stack([a, b]), scores=[0.9, 0.8])

    assert len(segment_tiled(np.zeros((64, 64)), overlapping_pair, tile=64, overlap=16)) == 2

    ramp = np.tile(np.arange(112, dtype=float), (64, 1))  # a tile's first pixel says where it lies
    cores = [t.core for t in plan_tiles(ramp.shape, 64, 16)]
    assert len(cores) == 2 and cores[0][3] == cores[1][1]
    seam = cores[0][3]

    def one_cell_on_the_seam(tile: np.ndarray) -> Instances:
        x0 = int(tile[0, 0])
        left = x0 == 0  # each tile finds the cell two pixels apart, its centre inside its own core
        mask = np.zeros(tile.shape, bool)
        start = seam - 11 if left else seam - 9
        mask[10:30, start - x0 : start - x0 + 20] = True
        return Instances.from_mask_stack(mask[None], scores=[0.9 if left else 0.8])

    stitched = segment_tiled(ramp, one_cell_on_the_seam, tile=64, overlap=16)
    assert len(stitched) == 1 and np.isclose(stitched.scores[0], 0.9)
