"""The "Measure blastomeres" widget against the exact ground truth of synthetic embryos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blastoseg import __version__, measure, synth
from blastoseg._napari import layers as L
from blastoseg._napari._widgets.measure import MeasureWidget
from tests.napari.support import add_truth_cells, embryo, env, errors, tiny_checkpoint  # noqa: F401


def test_csv_from_ground_truth_layers_matches_the_truth_exactly(make_napari_viewer, env, tmp_path):
    sample = embryo()
    truth = sample.instances
    viewer = make_napari_viewer()
    viewer.add_image(sample.image, name="embryo", scale=(0.5, 0.5))
    for data, kwargs, _ in L.result_layers([truth], "embryo", {"method": "embedseg", "model_sha256": "f00d"}, "r1",
                                           scale=(0.5, 0.5)):
        viewer.add_labels(data, **kwargs)
    widget = MeasureWidget(viewer)
    widget.run()
    assert errors(env) == []
    cells_path, frames_path = widget.export(tmp_path / "embryo.csv")
    cells = pd.read_csv(cells_path).sort_values("area_px")
    # each layer "embryo · run 1 · cell k" holds truth instance k-1: areas must agree to the pixel
    expected = {k + 1: int(a) for k, a in enumerate(truth.areas())}
    assert dict(zip(cells["cell"], cells["area_px"])) == expected
    visible = {k + 1: int(v.sum()) for k, v in enumerate(truth.visible_masks())}
    assert dict(zip(cells["cell"], cells["visible_area_px"])) == visible
    assert cells["area_um2"].tolist() == pytest.approx((cells["area_px"] * 0.25).tolist())
    assert set(cells["image"]) == {"embryo"} and set(cells["model_sha256"]) == {"f00d"}
    assert set(cells["blastoseg_version"]) == {__version__}
    frames = pd.read_csv(frames_path)
    assert frames["n_cells"].tolist() == [4]
    diameters = np.sqrt(4 * truth.areas() / np.pi)
    expected_flag = (diameters.max() - diameters.min()) / diameters.max() <= 0.25
    assert frames["symmetric"].tolist() == [expected_flag]
    assert frames["total_occluded_area_px"].tolist() == [int(truth.areas().sum() - sum(visible.values()))]
    assert widget._table.shape == (4, len(cells.columns) - len(measure.PROVENANCE_COLUMNS))
    assert "4 cells" in widget._summary.value
    # a second export keeps the first files
    first = cells_path.read_bytes()
    again = widget.export(tmp_path / "embryo.csv")
    assert again[0].name == "embryo-2_cells.csv" and cells_path.read_bytes() == first


def test_time_lapse_counts_and_cleavage_times(make_napari_viewer, env):
    samples = synth.synth_timelapse(n_frames=6, shape=(96, 96), seed=2, final_cells=4)
    truths = [s.instances for s in samples]
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([s.image for s in samples]), name="movie")
    add_truth_cells(viewer, "movie", truths)
    widget = MeasureWidget(viewer)
    widget._interval.value = 0.25
    widget.run()
    assert errors(env) == []
    counts = [len(t) for t in truths]
    assert widget.result.frames["n_cells"].tolist() == counts
    assert widget.result.cleavage == measure.cleavage_times(counts)
    assert widget.result.frames["time_h"].tolist() == [0.25 * t for t in range(6)]
    cells = widget.result.cells
    for t, truth in enumerate(truths):  # cells are numbered over time, so a frame's rows follow those numbers
        assert sorted(cells[cells["frame"] == t]["area_px"]) == sorted(truth.areas().tolist())
    first = cells[cells["cell"] == 1]
    assert len(first) > 1  # cell 1 keeps its number until it divides
    assert not widget.canvas.isHidden()  # the cell-count plot is shown for stacks
    assert list(widget.figure.axes[0].lines[0].get_ydata()) == counts
    widget._show_table.value = "frames"
    assert widget._table.shape[0] == 6


def test_measure_chosen_layers_and_bad_inputs(make_napari_viewer, env):
    sample = embryo()
    viewer = make_napari_viewer()
    widget = MeasureWidget(viewer)
    widget.run()
    assert "Nothing to measure" in errors(env)[-1]
    viewer.add_image(sample.image, name="embryo")
    widget.reset_choices()
    widget.run()
    assert "has no cells" in errors(env)[-1]
    labels = viewer.add_labels(sample.instances.visible_labels(), name="my labels")
    wrong = viewer.add_labels(np.ones((32, 32), np.uint8), name="small")
    widget.reset_choices()
    widget._cells.value = [wrong]
    widget.run()
    assert "32x32 pixels but the image is 128x128" in errors(env)[-1]
    widget._cells.value = [labels]
    widget.run()
    assert widget.result.cells["area_px"].tolist() == sample.instances.visible().areas().tolist()
    assert widget.result.cells["occluded_fraction"].tolist() == [0.0] * 4  # a plain label image is modal


def test_an_empty_cell_measures_nothing_and_a_new_image_clears_the_table(make_napari_viewer, env):
    sample = embryo()
    viewer = make_napari_viewer()
    viewer.add_image(sample.image, name="embryo")
    viewer.add_image(sample.image[::-1].copy(), name="other")
    add_truth_cells(viewer, "embryo", sample.instances)
    widget = MeasureWidget(viewer)
    widget._image.value = viewer.layers["embryo"]
    widget.run()
    assert widget._export.enabled and "4 cells" in widget._summary.value
    widget._image.value = viewer.layers["other"]  # old measurements do not pass for the new image's
    assert widget.result is None and not widget._export.enabled and widget._summary.value == ""
    # a result whose only cell was never painted: an error, no "0 cells", nothing to export
    from blastoseg._napari import layers as L
    from blastoseg.instances import Instances

    for data, kwargs, _ in L.result_layers([Instances.empty((128, 128))], "other", {}, "empty", "other · run 1"):
        viewer.add_labels(data, **kwargs)
    data, kwargs, _ = L.empty_cell_layer("other", "empty", "other · run 1", (128, 128), 1, 1)
    viewer.add_labels(data, **kwargs)
    widget.run()
    assert "hold no painted pixels" in errors(env)[-1]
    assert widget.result is None and not widget._export.enabled and "0 cells" not in widget._summary.value
