"""The "Train on corrections" widget: a few real steps, cancel, the annotations it reads."""

from __future__ import annotations

import numpy as np
import pytest

from blastoseg import catalogue, checkpoint
from blastoseg._napari import layers as L
from blastoseg._napari._widgets.correct import CorrectWidget
from blastoseg._napari._widgets.segment import SegmentWidget
from blastoseg._napari._widgets.train import SCRATCH, TrainWidget
from tests.napari.support import (  # noqa: F401
    add_truth_cells,
    embryo,
    env,
    errors,
    layer_snapshot,
    tiny_checkpoint,
)


@pytest.fixture
def setup(make_napari_viewer, env):
    viewer = make_napari_viewer()
    sample = embryo()
    viewer.add_image(sample.image, name="embryo")
    segment, train = SegmentWidget(viewer), TrainWidget(viewer)
    train._unit.value = "steps"
    return viewer, segment, train, sample


def test_training_saves_a_model_that_segment_lists_at_once(setup, env):
    viewer, segment, train, sample = setup
    add_truth_cells(viewer, "embryo", sample.instances)
    train._amount.value = 3
    before = layer_snapshot(viewer)
    train.run()
    assert errors(env) == []
    assert [e.step for e in train.history] == [1, 2, 3]
    assert all(np.isfinite(e.losses["total"]) for e in train.history)
    assert train.output.parent == env["user"] and train.output.is_file()
    assert train.output in segment._model.choices
    meta = checkpoint.read_metadata(train.output)
    assert meta["training"]["steps"] == 3 and "embryo" in meta["training"]["description"]
    assert meta["parent"]["sha256"] == catalogue.file_sha256(env["shipped"] / "embedseg.safetensors")
    lines = train.figure.axes[0].lines
    assert lines and list(lines[0].get_xdata()) == [1, 2, 3]
    assert train.figure.axes[1].get_ylabel() == "AP50 on your frames"  # scored on the training frames, not held out
    assert train._status.value.startswith("done at step 3")
    assert layer_snapshot(viewer) == before  # training reads layers, never writes them
    # from scratch: a new model of the chosen method, saved under a new name
    first = train.output
    train._start.value, train._amount.value = SCRATCH, 1
    assert train._method.enabled
    train.run()
    assert train.output != first and first.is_file() and train.output.is_file()
    meta = checkpoint.read_metadata(train.output)
    assert meta["method"] == "embedseg" and "parent" not in meta and meta["training"]["steps"] == 1
    assert meta["training"]["description"].startswith("napari: trained on 1 annotated frame")


def test_cancel_in_the_first_step_writes_nothing_and_later_keeps_the_best(setup, env):
    viewer, segment, train, sample = setup
    add_truth_cells(viewer, "embryo", sample.instances)
    train._amount.value = 40  # first checkpoint at step 10
    show = train._show
    train._show = lambda event: (show(event), train.cancel())
    train.run()
    assert not train.output.exists() and len(train.history) == 1
    assert env["notes"][-1] == ("info", "Training cancelled before the first checkpoint was saved; no model was written")
    assert train._task is None and train._cancel.native.isHidden()
    assert train._status.value == "cancelled at step 1; no model was written"  # no ETA left over
    train._amount.value = 8  # checkpoints every 2 steps
    train._show = lambda event: (show(event), event.saved and train.cancel())
    train.run()
    assert [e.step for e in train.history] == [1, 2] and train.output.is_file()
    assert checkpoint.read_metadata(train.output)["training"]["steps"] == 2
    assert "kept the best checkpoint so far" in env["notes"][-1][1]
    assert train.output in segment._model.choices


def test_missing_or_mismatched_annotations_are_reported(setup, env):
    viewer, segment, train, _ = setup
    train.run()
    assert "No annotations for 'embryo'" in errors(env)[-1]
    correct = CorrectWidget(viewer)
    correct.add_cell()  # an empty cell layer: nothing painted yet
    train.run()
    assert "hold no cells" in errors(env)[-1]
    wrong = viewer.add_labels(np.ones((64, 64), np.uint8), name="other image's labels")
    train.reset_choices()
    train._annotations.value = [wrong]
    before = layer_snapshot(viewer)
    train.run()
    assert "64x64 pixels but the image is 128x128" in errors(env)[-1]
    assert layer_snapshot(viewer) == before and train._task is None
    assert not list(env["user"].glob("*.safetensors")) if env["user"].exists() else True


def test_annotations_from_linked_layers_keep_amodal_masks_and_depth(setup):
    viewer, _, train, sample = setup
    truth = sample.instances
    add_truth_cells(viewer, "embryo", truth)
    (image, found), = train.collect_pairs()
    assert image.shape == (128, 128)
    assert sorted(found.areas().tolist()) == sorted(truth.areas().tolist())
    match = found.iou(truth).argmax(1)  # found cell k is truth cell match[k]
    assert sorted(match.tolist()) == list(range(len(truth)))
    assert np.all(found.iou(truth).max(1) == 1.0)
    # the depth the cell layers record decides who is in front: same front-to-back order as the truth
    np.testing.assert_array_equal(np.argsort(truth.depth[match], kind="stable"), np.argsort(found.depth, kind="stable"))
    # any Labels layers work too: a packed (L, H, W) layer, or a plain (modal) label image
    packed = viewer.add_labels(truth.layered(), name="my packed labels")
    plain = viewer.add_labels(truth.visible_labels(), name="my label image")
    train.reset_choices()
    train._annotations.value = [packed]
    (_, found), = train.collect_pairs()
    assert found == truth.with_depth(np.arange(len(truth)))  # lower label = nearer when no depth is known
    train._annotations.value = [plain]
    (_, modal), = train.collect_pairs()
    assert sorted(modal.areas().tolist()) == sorted(truth.visible().areas().tolist())
    assert modal.coverage().max() == 1


@pytest.mark.parametrize("method", ["layered", "fcrnet", "vqshape"])
def test_every_method_trains_from_scratch_and_segments_in_the_widgets(setup, env, method):
    viewer, segment, train, sample = setup
    add_truth_cells(viewer, "embryo", sample.instances)
    train._start.value, train._method.value, train._amount.value = SCRATCH, method, 2
    train.run()
    assert errors(env) == [] and [e.step for e in train.history] == [1, 2]
    assert checkpoint.read_metadata(train.output)["method"] == method
    segment._model.value = train.output
    segment.run()
    assert errors(env) == []
    found = [layer for layer in viewer.layers if L.tag(layer).get("role") == "overview" and L.tag(layer).get("method") == method]
    assert len(found) == 1 and found[0].data.shape == sample.image.shape


def test_a_minutes_budget_is_scored_several_times(setup, env, monkeypatch):
    from blastoseg.training import train as training

    viewer, _, train, sample = setup
    add_truth_cells(viewer, "embryo", sample.instances)
    # a budget that 30 steps use up, whatever the machine's pace
    monkeypatch.setattr(training.Budget, "fraction", lambda self, step, elapsed: min(step / 30, 1.0))
    train._unit.value, train._amount.value = "minutes", 0.5
    train.run()
    assert errors(env) == []
    scored = [e.step for e in train.history if e.validation is not None]
    assert len(train.history) == 30 and 6 <= len(scored) <= 12
    assert scored[0] == 1  # the first point comes at once
    assert len(train.figure.axes[1].lines[0].get_xdata()) == len(scored)


@pytest.mark.parametrize(("parent", "tuned", "said"), [
    (0.2, 0.6, "It beats the model it started from: 0.600 against 0.200"),
    (0.9, 0.3, "It does NOT beat the model it started from (0.300 against 0.900 on the same frames)"),
])
def test_the_widget_says_whether_the_fine_tune_beats_its_parent(setup, env, monkeypatch, parent, tuned, said):
    from blastoseg.training import train as training

    viewer, _, train, sample = setup
    add_truth_cells(viewer, "embryo", sample.instances)
    scores = iter([parent] + [tuned] * 10)  # the parent is scored first, on the same frames
    monkeypatch.setattr(training, "validate", lambda model, pairs, device: next(scores))
    train._amount.value = 2
    train.run()
    assert errors(env) == []
    assert said in env["notes"][-1][1]
    assert train._status.value.endswith("NOT better than its parent" if tuned < parent else " · better than its parent")
    assert checkpoint.read_metadata(train.output)["training"]["beats_parent"] == (tuned > parent)
