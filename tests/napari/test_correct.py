"""The Correct step: review, pick cells on the overview, draw a cell, delete one, paint one."""

from __future__ import annotations

import numpy as np
import pytest

from blastoseg import synth
from blastoseg._napari import layers as L
from blastoseg._napari._widgets.main import BlastosegWidget
from blastoseg.instances import Instances
from tests.napari.support import (  # noqa: F401
    cell_layers,
    embryo,
    env,
    errors,
    finish_with,
    tiny_checkpoint,
)


@pytest.fixture
def setup(make_napari_viewer, env):
    viewer = make_napari_viewer()
    sample = embryo()
    image = viewer.add_image(sample.image, name="embryo", scale=(0.5, 0.5))
    widget = BlastosegWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, image, sample


def overview(viewer):
    return next(x for x in viewer.layers if L.tag(x).get("role") == "overview")


def test_an_ellipse_drawn_in_a_shapes_layer_becomes_a_cell(setup, env):
    viewer, widget, image, sample = setup
    finish_with(widget.segment, image, [sample.instances])
    correct = widget.correct
    correct.shape_to_cell()  # nothing drawn yet: a Shapes layer to draw in, in ellipse mode
    shapes = viewer.layers.selection.active
    assert shapes.name == "embryo · run 1 · draw a cell" and shapes.mode == "add_ellipse"
    assert tuple(shapes.scale) == (0.5, 0.5)
    # an ellipse centred at pixel (64, 40), radii 20 x 12 pixels (the layer's data coordinates are the image's pixels)
    shapes.add_ellipses(np.array([[64.0, 40.0], [20.0, 12.0]]))
    correct.shape_to_cell()
    assert errors(env) == []
    assert shapes not in viewer.layers  # the drawing layer goes once its shapes are cells
    new = viewer.layers["embryo · run 1 · cell 5"]
    info = L.tag(new)
    assert info["role"] == "cell" and info["cell"] == 5 and info["run"] == L.tag(overview(viewer))["run"]
    yy, xx = np.mgrid[:128, :128]
    ellipse = ((yy - 64) / 20) ** 2 + ((xx - 40) / 12) ** 2 <= 1
    assert (new.data == 5).sum() == pytest.approx(ellipse.sum(), rel=0.08)
    assert np.count_nonzero((new.data != 0) & ellipse) / ellipse.sum() > 0.95
    # placed after the run's last cell, drawn on the overview, and read as a cell (behind the others)
    assert viewer.layers.index(new) == viewer.layers.index(viewer.layers["embryo · run 1 · cell 4"]) - 1
    assert np.any(overview(viewer).data == 5)
    (found,), numbers = L.cells_from_layers(cell_layers(viewer), 1, (128, 128))
    assert numbers == [[1, 2, 3, 4, 5]] and found.depth[4] == found.depth.max()
    # a polygon in a Shapes layer of the user's own works too (its selected shapes only)
    own = viewer.add_shapes([np.array([[10.0, 10.0], [10.0, 30.0], [30.0, 30.0]]), np.array([[50, 50], [50, 60], [60, 60]])],
                            shape_type="polygon", scale=(0.5, 0.5))
    own.selected_data = {0}
    correct.shape_to_cell()
    assert L.tag(viewer.layers["embryo · run 1 · cell 6"])["cell"] == 6 and len(own.data) == 1


def test_pick_a_cell_on_the_overview_and_delete_it(setup, env):
    viewer, widget, image, sample = setup
    truth = sample.instances
    finish_with(widget.segment, image, [truth])
    results, correct = widget.results, widget.correct
    view = overview(viewer)
    run = L.tag(view)["run"]
    # the front-most cell at a point inside cell 2
    y, x = np.argwhere(truth.visible_labels() == 2)[0]
    assert results.cell_at(run, view.data_to_world((y, x))) == 2
    assert results.cell_at(run, view.data_to_world((0, 0))) is None
    results.pick(run, 2)
    assert viewer.layers["embryo · run 1 · cell 2"].visible and "cell 2 picked" in correct._status.value
    results.pick(run, 3)
    assert not viewer.layers["embryo · run 1 · cell 2"].visible and viewer.layers["embryo · run 1 · cell 3"].visible
    viewer.layers.selection.active = view
    correct.delete_cell()  # one action: the picked cell goes, from the layers and the overview
    assert "embryo · run 1 · cell 3" not in [x.name for x in viewer.layers]
    assert not np.any(view.data == 3) and np.any(view.data == 2)
    assert L.tag(view).get("edited")
    correct.delete_cell()
    assert "No cell picked" in errors(env)[-1]
    # double-clicking a cell's spot makes its layer the one to paint
    results.edit(run, 1)
    assert viewer.layers.selection.active is viewer.layers["embryo · run 1 · cell 1"]
    assert viewer.layers["embryo · run 1 · cell 1"].mode == "paint"


def test_painting_a_cell_redraws_the_overview(setup, env, qtbot):
    viewer, widget, image, sample = setup
    finish_with(widget.segment, image, [sample.instances])
    view = overview(viewer)
    widget.correct.add_cell()
    added = viewer.layers.selection.active
    assert added.name == "embryo · run 1 · cell 5" and added.selected_label == 5 and added.mode == "paint"
    assert not added.data.any()
    added.data_setitem(np.nonzero(np.pad(np.ones((20, 20), bool), ((10, 98), (10, 98)))), 5)
    qtbot.waitUntil(lambda: np.any(view.data == 5), timeout=2000)
    assert view.data[10, 10] == 5 and view.data[20, 20] == 0  # an outline, not a fill


def test_review_lists_doubtful_and_oversized_cells_and_goes_to_them(setup, env):
    viewer, widget, image, _ = setup

    def disc(cy, cx, r):
        yy, xx = np.mgrid[:128, :128]
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2

    masks = [disc(30, 30, 8), disc(30, 60, 8), disc(60, 30, 8), disc(80, 80, 30)]  # the last is ~14x the others
    cells = Instances.from_mask_stack(np.stack(masks), scores=[0.9, 0.2, 0.8, 0.95])
    finish_with(widget.segment, image, [cells])
    correct = widget.correct
    assert [f.cell for f in correct._flags] == [2, 4]
    assert correct._flags[0].reason == "confidence 0.20" and correct._flags[1].reason.endswith("x the median area")
    assert "2 to review" in widget.segment._status.value  # and the message stays after the run
    assert not widget.segment._run.native.isHidden()
    viewer.add_points(np.zeros((1, 2)))  # layers come and go: the pickers refresh, the list stays
    assert list(correct._review.choices) == [0, 1]
    correct._review.value = [1]
    assert viewer.camera.center[-2:] == pytest.approx((80 * 0.5, 80 * 0.5), abs=0.5)
    assert viewer.layers["embryo · run 1 · cell 4"].visible
    correct._review_below.value = 0.1
    assert [f.cell for f in correct._flags] == [4]
    # with the zona known, a cell larger than half the space inside it is flagged
    zona = np.zeros((1, 128, 128), np.uint8)
    zona[0][disc(64, 64, 40)] = 2
    finish_with(widget.segment, image, [cells], zona=zona)
    assert any(f.cell == 4 and "of the zona" in f.reason for f in correct._flags)


def test_time_lapse_review_goes_to_the_frame(make_napari_viewer, env):
    samples = synth.synth_timelapse(6, (96, 96), seed=4)
    truths = [s.instances.with_scores(np.full(len(s.instances), 0.9, np.float32)) for s in samples]
    truths[3] = truths[3].with_scores(np.r_[0.1, np.full(len(truths[3]) - 1, 0.9)].astype(np.float32))
    viewer = make_napari_viewer()
    image = viewer.add_image(np.stack([s.image for s in samples]), name="movie")
    widget = BlastosegWidget(viewer)
    finish_with(widget.segment, image, truths)
    flags = widget.correct._flags
    assert [(f.frame, f.confidence) for f in flags] == [(3, pytest.approx(0.1))]
    assert widget.correct._review.choices and "frame 3" in widget.correct._review.native.item(0).text()
    widget.correct._review.value = [0]
    assert viewer.dims.current_step[0] == 3


class Press:
    """A mouse event as napari hands it to a layer's callbacks."""

    def __init__(self, position, kind="mouse_press"):
        self.position, self.type, self.modifiers = tuple(position), kind, ()


def test_a_click_on_the_overview_picks_and_a_double_click_paints_without_zooming(setup, env):
    viewer, widget, image, sample = setup
    truth = sample.instances
    finish_with(widget.segment, image, [truth])
    view = overview(viewer)
    y, x = np.argwhere(truth.visible_labels() == 3)[0]
    where = view.data_to_world((y, x))
    click = Press(where)
    drag = widget.results._on_overview_click(view, click)
    next(drag)
    click.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(drag)
    assert widget.results.picked == (L.tag(view)["run"], 3) and viewer.layers["embryo · run 1 · cell 3"].visible
    # a drag pans, and picks nothing
    press = Press(view.data_to_world((2, 2)))
    drag = widget.results._on_overview_click(view, press)
    next(drag)
    press.type, press.position = "mouse_move", tuple(view.data_to_world((40, 40)))
    next(drag)
    press.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(drag)
    assert widget.results.picked[1] == 3
    # double-click: napari zooms in first; the cell is opened for painting and the view stays
    drag = widget.results._on_overview_click(view, Press(where))
    next(drag)
    before = (tuple(viewer.camera.center), viewer.camera.zoom)
    viewer.camera.zoom *= 2
    widget.results._on_overview_double_click(view, Press(where, "mouse_double_click"))
    assert (tuple(viewer.camera.center), viewer.camera.zoom) == before
    assert viewer.layers.selection.active is viewer.layers["embryo · run 1 · cell 3"]
    assert viewer.layers["embryo · run 1 · cell 3"].mode == "paint"
