"""The "Segment embryo" widget end to end, with a tiny model, and its bad-input messages."""

from __future__ import annotations

import numpy as np
import pytest

from blastoseg import catalogue, checkpoint
from blastoseg._napari import layers as L
from blastoseg._napari._widgets.segment import SegmentWidget
from blastoseg.inference.predict import FrameResult
from blastoseg.model import new_model
from tests.napari.support import (  # noqa: F401
    add_truth_cells,
    embryo,
    env,
    errors,
    layer_snapshot,
    tiny_checkpoint,
)


@pytest.fixture
def viewer_with_embryo(make_napari_viewer, env):
    viewer = make_napari_viewer()
    sample = embryo()
    viewer.add_image(sample.image, name="embryo", scale=(0.5, 0.5))
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, sample


def test_segment_adds_linked_layers_and_never_touches_old_ones(viewer_with_embryo, env):
    viewer, widget, _ = viewer_with_embryo
    assert widget._model.value == env["shipped"] / "embedseg.safetensors"  # the default model
    assert widget._image.value is viewer.layers["embryo"]
    widget.run()
    assert errors(env) == []
    names = [layer.name for layer in viewer.layers]
    assert names[:3] == ["embryo", "embryo visible cells", "embryo overlaps"]
    visible = viewer.layers["embryo visible cells"]
    info = L.tag(visible)
    assert info["role"] == "visible" and info["source"] == "embryo" and info["method"] == "embedseg"
    assert info["model_sha256"] == catalogue.file_sha256(env["shipped"] / "embedseg.safetensors")
    assert visible.data.shape == (128, 128) and tuple(visible.scale) == (0.5, 0.5)
    before = layer_snapshot(viewer)
    widget.run()  # a second run adds a new set and leaves the first alone
    assert layer_snapshot(viewer)[: len(before)] == before
    runs = {L.tag(layer)["run"] for layer in viewer.layers if L.tag(layer)}
    assert len(runs) == 2


def test_result_layers_per_cell_review_and_add_cell(viewer_with_embryo, env):
    viewer, widget, sample = viewer_with_embryo
    truth = sample.instances.with_scores(np.array([0.9, 0.3, 0.95, 0.45], np.float32))
    model = checkpoint.load(env["shipped"] / "embedseg.safetensors", "cpu")
    widget._finished(viewer.layers["embryo"], (model, [FrameResult(truth)]))  # what a run that found these cells does
    cells = [layer for layer in viewer.layers if L.tag(layer).get("role") == "cell"]
    assert sorted(layer.name for layer in cells) == [f"embryo cell {i}" for i in range(1, 5)]
    for layer in cells:
        i = L.tag(layer)["cell"] - 1
        np.testing.assert_array_equal(layer.data != 0, truth.mask(i))  # the whole amodal extent
        assert L.tag(layer)["confidence"] == pytest.approx(truth.scores[i])
        assert layer.features["confidence"].tolist() == pytest.approx([truth.scores[i]])
    depth_of_top = L.tag(cells[-1])["depth"]
    assert depth_of_top == truth.depth.min()  # front-most cell drawn on top
    overlaps = viewer.layers["embryo overlaps"].data
    np.testing.assert_array_equal(overlaps.astype(bool), truth.coverage() >= 2)
    # review: low-confidence cells, lowest first; clicking selects the cell's layer
    assert list(widget._review.choices) == [0, 1]
    assert widget._review_items[0][2] == 2 and widget._review_items[1][2] == 4
    widget._review.value = [1]
    assert viewer.layers.selection.active is viewer.layers["embryo cell 4"]
    widget._review_below.value = 0.2
    assert list(widget._review.choices) == []
    # "Add cell": an empty amodal layer in the same run, painted with the next label
    widget.add_cell()
    added = viewer.layers[-1]
    assert added.name == "embryo cell 5" and added.selected_label == 5 and not added.data.any()
    assert L.tag(added)["run"] == L.tag(cells[0])["run"] and added.mode == "paint"


def test_time_lapse_gives_a_packed_layer(make_napari_viewer, env):
    viewer = make_napari_viewer()
    stack = np.stack([embryo().image[:96, :96]] * 3)
    viewer.add_image(stack, name="movie")
    widget = SegmentWidget(viewer)
    widget._tta.value = False
    widget.run()
    assert errors(env) == []
    packed = viewer.layers["movie cells (packed)"]
    assert packed.data.ndim == 4 and packed.data.shape[0] == 3 and packed.data.shape[2:] == (96, 96)
    assert L.tag(packed)["role"] == "packed" and len(L.tag(packed)["frames"]) == 3
    assert viewer.layers["movie visible cells"].data.shape == (3, 96, 96)
    assert not any(L.tag(layer).get("role") == "cell" for layer in viewer.layers)


def test_bad_inputs_are_notifications_and_change_nothing(make_napari_viewer, env, tmp_path):
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    widget.run()
    assert "No image layer" in errors(env)[-1]
    viewer.add_image(np.zeros((2, 3, 64, 64), np.float32), name="zstack")
    widget.reset_choices()
    widget.run()
    assert "4 dimensions" in errors(env)[-1] and "Pick one channel" in errors(env)[-1]
    assert [layer.name for layer in viewer.layers] == ["zstack"]
    # a corrupt file and a foreign safetensors file are refused with the reason
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    widget.open_checkpoint(tmp_path / "junk.safetensors")
    assert "junk.safetensors" in errors(env)[-1] and "not a safetensors file" in errors(env)[-1]
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    widget.open_checkpoint(tmp_path / "foreign.safetensors")
    assert "not a blastoseg checkpoint" in errors(env)[-1]
    assert len(widget._model.choices) == 1
    # a checkpoint whose weights do not fit fails inside the worker, as a notification
    bad = new_model("embedseg", {"net_options": {"base": 4, "depth": 2, "full_res": 4}})
    bad.config["net_options"] = {"base": 8, "depth": 2, "full_res": 4}
    checkpoint.save(bad, tmp_path / "mismatch.safetensors")
    widget.open_checkpoint(tmp_path / "mismatch.safetensors")
    assert widget._model.value == tmp_path / "mismatch.safetensors" and len(widget._model.choices) == 2
    widget.open_checkpoint(env["shipped"] / "embedseg.safetensors")  # already listed: just selected
    assert widget._model.value == env["shipped"] / "embedseg.safetensors" and len(widget._model.choices) == 2
    widget._model.value = tmp_path / "mismatch.safetensors"
    viewer.add_image(embryo().image, name="ok")
    widget.reset_choices()
    widget._image.value = viewer.layers["ok"]
    widget.run()
    assert "Segmentation failed" in errors(env)[-1] and "do not fit" in errors(env)[-1]
    assert [layer.name for layer in viewer.layers] == ["zstack", "ok"]
    assert not widget._run.native.isHidden() and widget._cancel.native.isHidden()


def test_rgb_is_converted_with_a_warning_and_cancel_adds_nothing(make_napari_viewer, env):
    viewer = make_napari_viewer()
    viewer.add_image(np.repeat(embryo().image[:64, :64, None], 3, axis=2), name="colour", rgb=True)
    widget = SegmentWidget(viewer)
    widget._tta.value = False
    widget.run()
    assert any(level == "warning" and "greyscale" in message for level, message in env["notes"])
    assert viewer.layers["colour visible cells"].data.shape == (64, 64)
    before = layer_snapshot(viewer)
    from blastoseg._napari._widgets import tasks

    original = tasks.Progress.set

    def cancel_on_first_progress(self, done, total):
        original(self, done, total)
        widget.cancel()

    tasks.Progress.set = cancel_on_first_progress
    try:
        widget.run()
    finally:
        tasks.Progress.set = original
    assert layer_snapshot(viewer) == before
    assert env["notes"][-1] == ("info", "Segmentation cancelled; no layers were added")
    assert not widget._run.native.isHidden() and widget._cancel.native.isHidden()


def test_the_rescale_switch_reaches_segmentation(make_napari_viewer, env, monkeypatch):
    import blastoseg.inference.predict as predict

    asked, real = [], predict.analyse_frames
    monkeypatch.setattr(predict, "analyse_frames", lambda *a, **k: asked.append(k["auto_scale"]) or real(*a, **k))
    viewer = make_napari_viewer()
    viewer.add_image(embryo().image[:96, :96], name="embryo")
    widget = SegmentWidget(viewer)
    widget._tta.value = False
    widget.run()
    widget._rescale.value = False
    widget.run()
    assert errors(env) == [] and asked == [True, False]


def test_zona_and_fragments_get_layers_of_their_own(viewer_with_embryo, env):
    from blastoseg.inference.embryo import Embryo
    from blastoseg.instances import FRAGMENT, Instances

    viewer, widget, sample = viewer_with_embryo
    model = checkpoint.load(env["shipped"] / "embedseg.safetensors", "cpu")
    fragment = np.zeros((128, 128), bool)
    fragment[5:9, 5:9] = True
    pieces = Instances.from_mask_stack(fragment[None]).with_class(FRAGMENT)
    zona = Embryo((64.0, 64.0), 60.0, 52.0, 0.9)
    widget._finished(viewer.layers["embryo"], (model, [FrameResult(sample.instances, zona, pieces)]))
    roles = {L.tag(layer).get("role"): layer for layer in viewer.layers if L.tag(layer)}
    assert {"zona", "fragments", "visible", "cell"} <= set(roles)
    np.testing.assert_array_equal(roles["fragments"].data == 1, fragment)
    assert roles["zona"].data[64, 64] == 2 and roles["zona"].data[64, 64 + 56] == 1 and roles["zona"].data[0, 0] == 0
    cells = [layer for layer in viewer.layers if L.tag(layer).get("role") == "cell"]
    assert len(cells) == len(sample.instances)  # fragments are not cells
