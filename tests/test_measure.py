"""measure.py: per-cell values against hand-computed cases and exact ground truth, the
Istanbul symmetry rule, cleavage times and the CSV files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from blastoseg import __version__, measure, synth
from blastoseg.instances import Instances
from blastoseg.measure import measure_frames


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _cells_with_diameters(diameters: list[float]) -> Instances:
    """Side-by-side discs of the given diameters (pixels)."""
    shape = (50, 50 * len(diameters))
    return Instances.from_mask_stack(np.stack([_disc(shape, 25, 50 * k + 25, d / 2) for k, d in enumerate(diameters)]))


def test_two_overlapping_rectangles_by_hand():
    shape = (30, 40)
    a = np.zeros(shape, bool)
    a[5:15, 5:25] = True  # 10 x 20 = 200 px, in front
    b = np.zeros(shape, bool)
    b[10:20, 10:20] = True  # 10 x 10 = 100 px, 50 of them behind a
    inst = Instances.from_mask_stack(np.stack([a, b]), scores=[0.9, 0.4], depth=[0, 1])
    cells = measure.measure_instances(inst, pixel_size=0.5)
    assert cells["area_px"].tolist() == [200, 100]
    assert cells["visible_area_px"].tolist() == [200, 50]
    assert cells["occluded_fraction"].tolist() == [0.0, 0.5]
    assert cells["area_um2"].tolist() == [50.0, 25.0]
    assert cells["centroid_y_px"].tolist() == [9.5, 14.5]
    assert cells["centroid_x_px"].tolist() == [14.5, 14.5]
    assert cells["confidence"].tolist() == pytest.approx([0.9, 0.4])
    assert cells["equivalent_diameter_px"].tolist() == pytest.approx([np.sqrt(4 * 200 / np.pi), np.sqrt(4 * 100 / np.pi)])
    assert cells["eccentricity"][1] == pytest.approx(0.0, abs=1e-9)  # a square's inertia is isotropic
    assert cells["perimeter_um"][0] == pytest.approx(cells["perimeter_px"][0] * 0.5)
    frames = measure.measure_frames(inst, pixel_size=0.5).frames
    assert frames["n_cells"][0] == 2 and frames["total_occluded_area_px"][0] == 50
    assert frames["total_occluded_area_um2"][0] == pytest.approx(12.5)
    assert frames["overlap_area_px"][0] == 50
    assert frames["cv_area"][0] == pytest.approx(np.std([200, 100]) / 150)


def test_disc_shape_measures():
    inst = Instances.from_mask_stack(_disc((80, 80), 40, 40, 25)[None])
    row = measure.measure_instances(inst).iloc[0]
    assert row["equivalent_diameter_px"] == pytest.approx(50, rel=0.01)
    assert row["major_axis_px"] == pytest.approx(row["minor_axis_px"], rel=0.01)
    assert row["eccentricity"] < 0.1
    # 4*pi*A/P^2 with skimage's perimeter estimate: about 0.9 for a digital disc
    assert 0.85 < row["circularity"] < 1.05


def test_anisotropic_pixels_keep_areas_but_not_perimeter():
    inst = Instances.from_mask_stack(_disc((60, 60), 30, 30, 10)[None])
    row = measure.measure_instances(inst, pixel_size=(2.0, 0.5)).iloc[0]
    assert row["area_um2"] == row["area_px"] * 1.0
    assert np.isnan(row["perimeter_um"]) and np.isnan(row["circularity"])
    assert row["major_axis_um"] == pytest.approx(2 * 20, rel=0.05)  # y stretched 2x: diameter 20 px -> 40 µm


def test_areas_match_synthetic_ground_truth_exactly():
    sample = synth.synth_embryo((128, 128), n_cells=6, seed=11)
    truth = sample.instances
    result = measure.measure_frames(truth)
    assert result.cells["area_px"].tolist() == truth.areas().tolist()
    visible = [int(v.sum()) for v in truth.visible_masks()]
    assert result.cells["visible_area_px"].tolist() == visible
    assert result.frames["total_occluded_area_px"][0] == int(truth.areas().sum() - sum(visible))


@pytest.mark.parametrize(
    ("diameters", "expected"),
    [
        ([40, 40], True),
        ([40, 32], True),  # 20% smaller
        ([40, 28], False),  # 30% smaller
        ([40, 40, 40, 28], False),
        ([40, 38, 36, 34], True),
        ([40] * 7 + [32], True),
        ([40] * 7 + [26], False),
        ([40, 40, 20], None),  # 3 cells: not a stage the rule covers
        ([40], None),
        ([40] * 5, None),
    ],
)
def test_istanbul_symmetry_rule(diameters, expected):
    assert measure.symmetry(diameters) is expected
    cells = _cells_with_diameters(diameters)
    frame = measure.measure_frames(cells).frames.iloc[0]
    assert frame["symmetric"] is expected
    d = np.asarray(diameters, float)
    assert frame["size_ratio"] == pytest.approx(d.min() / d.max(), abs=0.05)


def test_symmetry_boundary_is_inclusive():
    assert measure.symmetry([100.0, 75.0]) is True  # exactly 25%
    assert measure.symmetry([100.0, 74.9]) is False


def test_cleavage_times_need_a_stable_count():
    counts = [1, 1, 2, 1, 2, 2, 3, 4, 4, 4, 5, 8]
    times = measure.cleavage_times(counts, stable=2)
    assert times == {"t2": 4, "t3": 6, "t4": 7, "t5": 10, "t8": None}  # t8 in the last frame is unconfirmed
    assert measure.cleavage_times(counts, stable=1)["t2"] == 2
    assert measure.cleavage_times(counts, stable=1)["t8"] == 11


def test_time_lapse_table_and_hours():
    frames = [_cells_with_diameters([20] * n).shifted(0, 0, (50, 200)) for n in (1, 2, 2, 4, 4)]
    result = measure.measure_frames(frames, frame_interval_h=0.5, provenance={"image": "e1", "method": "m", "model_sha256": "abc"})
    assert result.frames["n_cells"].tolist() == [1, 2, 2, 4, 4]
    assert result.frames["time_h"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert result.frames["cleavage"].tolist() == ["", "t2", "", "t3;t4", ""]
    assert result.cleavage_hours() == {"t2": 0.5, "t3": 1.5, "t4": 1.5, "t5": None, "t8": None}
    for table in (result.cells, result.frames):
        assert table["image"].unique().tolist() == ["e1"] and table["model_sha256"].unique().tolist() == ["abc"]
        assert table["blastoseg_version"].unique().tolist() == [__version__]


def test_csv_files_are_never_overwritten(tmp_path):
    inst = _cells_with_diameters([20, 18])
    result = measure.measure_frames(inst, provenance={"image": "e1"})
    first = measure.write_csv(result, tmp_path / "run.csv")
    assert first == (tmp_path / "run_cells.csv", tmp_path / "run_frames.csv")
    cells = pd.read_csv(first[0])
    assert cells["area_px"].tolist() == inst.areas().tolist()
    assert pd.read_csv(first[1])["symmetric"].tolist() == [True]
    second = measure.write_csv(result, tmp_path / "run.csv")
    assert second == (tmp_path / "run-2_cells.csv", tmp_path / "run-2_frames.csv")
    with pytest.raises(FileExistsError, match="already exist"):
        measure.write_csv(result, tmp_path / "run", on_exists="error")
    assert measure.write_csv(result, tmp_path / "run", on_exists="overwrite") == first


def test_empty_frame_and_empty_input():
    result = measure.measure_frames(Instances.empty((32, 32)))
    assert len(result.cells) == 0 and result.frames["n_cells"].tolist() == [0]
    assert result.frames["symmetric"].tolist() == [None]
    with pytest.raises(ValueError, match="nothing to measure"):
        measure.measure_frames([])


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"frame_interval_h": 0.0}, "frame interval must be a positive"), ({"frame_interval_h": -1.0}, "frame interval"),
    ({"frame_interval_h": float("nan")}, "frame interval"), ({"pixel_size": float("nan")}, "pixel size must be a positive"),
    ({"pixel_size": float("inf")}, "pixel size"), ({"pixel_size": (1.0, 0.0)}, "pixel size"),
    ({"embryos": [None, None]}, "2 embryos entries for 1 frames"), ({"cell_ids": []}, "0 cell_ids entries for 1 frames"),
])
def test_bad_measuring_settings_are_refused_even_for_empty_frames(kwargs, text):
    with pytest.raises(ValueError, match=text):
        measure.measure_frames(Instances.empty((32, 32)), **kwargs)


def test_fragmentation_percent_and_istanbul_grade():
    from blastoseg.instances import FRAGMENT
    from blastoseg.measure import fragmentation_grade

    cell = np.zeros((1, 40, 40), bool)
    cell[0, 0:20, 0:20] = True  # 400 px
    piece = np.zeros((1, 40, 40), bool)
    piece[0, 30:40, 30:40] = True  # 100 px
    piece[0, 15:25, 15:25] = True  # 100 px, a quarter under the cell: counts as the cell's
    cells = Instances.from_mask_stack(cell)
    fragments = Instances.from_label_image(ndimage.label(piece[0])[0]).with_class(FRAGMENT)
    row = measure_frames([cells], fragments=[fragments]).frames.iloc[0]
    assert row["n_fragments"] == 2 and row["fragment_area_px"] == 175
    assert row["fragmentation_pct"] == pytest.approx(100 * 175 / 575, abs=0.01) and row["fragmentation_grade"] == ">25%"
    assert [fragmentation_grade(p) for p in (0, 9.99, 10, 25, 25.01)] == ["<10%", "<10%", "10-25%", "10-25%", ">25%"]
    assert measure_frames([cells]).frames.iloc[0]["fragmentation_pct"] is None  # no fragments found: no figure
