"""The Segment step end to end, with a tiny model: one tidy run of layers per image, time-lapses
aligned with their image, and its bad-input messages."""

from __future__ import annotations

import numpy as np
import pytest

from blastoseg import catalogue, checkpoint, synth
from blastoseg._napari import layers as L
from blastoseg._napari._widgets.main import BlastosegWidget
from blastoseg._napari._widgets.segment import SegmentWidget
from blastoseg.model import new_model
from tests.napari.support import (  # noqa: F401
    cell_layers,
    embryo,
    env,
    errors,
    finish_with,
    layer_snapshot,
    tiny_checkpoint,
)


@pytest.fixture
def viewer_with_embryo(make_napari_viewer, env):
    viewer = make_napari_viewer()
    sample = embryo()
    viewer.add_image(sample.image, name="embryo", scale=(0.5, 0.5))
    widget = BlastosegWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, sample


def test_a_run_is_one_tidy_group_and_a_second_run_replaces_it(viewer_with_embryo, env):
    viewer, widget, _ = viewer_with_embryo
    segment = widget.segment
    assert segment._model.value == env["shipped"] / "embedseg.safetensors"  # the default model
    assert segment._image.value is viewer.layers["embryo"]
    segment._tta.value = False
    segment.run()
    assert errors(env) == []
    names = [layer.name for layer in viewer.layers][::-1]  # top to bottom, as the layer list shows them
    n = len(cell_layers(viewer))
    assert names == ["embryo · run 1 · cells", *[f"embryo · run 1 · cell {k}" for k in range(1, n + 1)], "embryo"]
    overview = viewer.layers["embryo · run 1 · cells"]
    info = L.tag(overview)
    assert info["role"] == "overview" and info["source"] == "embryo" and info["method"] == "embedseg"
    assert info["model_sha256"] == catalogue.file_sha256(env["shipped"] / "embedseg.safetensors")
    assert overview.data.shape == (128, 128) and tuple(overview.scale) == (0.5, 0.5)
    assert viewer.layers.selection.active is overview
    # a second run replaces the first (nobody edited it): one set of results, pickers list one run
    segment.run()
    names = [layer.name for layer in viewer.layers]
    assert not any("run 1" in name for name in names) and "embryo · run 2 · cells" in names
    assert len(L.runs(viewer.layers)) == 1
    run = L.runs(viewer.layers)[0]
    for picker in (widget.train._annotations, widget.measure._cells):
        assert [c.name for c in picker.choices] == ["embryo · run 2"]
    assert [c for c in widget.correct._result.choices if c] == [run.run]
    assert "replaced run 1" in segment._status.value
    # an edited run is kept (hidden) when the next one comes; "Remove" takes a run away
    widget.correct.add_cell()
    segment.run()
    assert [r.name for r in L.runs(viewer.layers)] == ["embryo · run 2", "embryo · run 3"]
    assert not any(x.visible for x in L.runs(viewer.layers)[0].layers)
    assert "hid run 2 (edited)" in segment._status.value
    widget.correct._result.value = L.runs(viewer.layers)[0].run
    widget.correct.remove_run()
    assert [r.name for r in L.runs(viewer.layers)] == ["embryo · run 3"]
    assert [c.name for c in widget.measure._cells.choices] == ["embryo · run 3"]


def test_cell_layers_hold_whole_cells_sorted_by_number(viewer_with_embryo, env):
    viewer, widget, sample = viewer_with_embryo
    truth = sample.instances.with_scores(np.array([0.9, 0.3, 0.95, 0.45], np.float32))
    finish_with(widget.segment, viewer.layers["embryo"], [truth])
    cells = cell_layers(viewer)
    assert [layer.name for layer in cells][::-1] == [f"embryo · run 1 · cell {i}" for i in range(1, 5)]
    block = [viewer.layers.index(x) for x in L.runs(viewer.layers)[0].layers]
    assert block == list(range(min(block), max(block) + 1))  # one consecutive block
    for layer in cells:
        i = L.tag(layer)["cell"] - 1
        np.testing.assert_array_equal(layer.data != 0, truth.mask(i))  # the whole amodal extent
        assert L.tag(layer)["confidence"] == pytest.approx(truth.scores[i])
        assert L.tag(layer)["depth"] == truth.depth[i]
        assert not layer.visible and tuple(layer.scale) == (0.5, 0.5)
    # the overview draws every cell's outline, the hidden parts included
    overview = viewer.layers["embryo · run 1 · cells"].data
    for i in range(4):
        mask = truth.mask(i)
        assert set(np.unique(overview[mask])) >= {0, i + 1}
        assert not np.any(overview[~mask] == i + 1)
    # the cells read back as the truth, depth order included
    (found,), numbers = L.cells_from_layers(cells, 1, truth.shape)
    assert numbers == [[1, 2, 3, 4]]
    assert found == truth.with_depth(np.argsort(np.argsort(truth.depth, kind="stable"), kind="stable"))


def test_a_time_lapse_lines_up_with_its_image_on_every_frame(make_napari_viewer, env):
    samples = synth.synth_timelapse(6, (96, 96), seed=4)
    truths = [s.instances for s in samples]
    assert len({len(t) for t in truths}) > 1  # cells divide: layers must follow frame by frame
    viewer = make_napari_viewer()
    image = viewer.add_image(np.stack([s.image for s in samples]), name="movie", scale=(2.0, 0.5, 0.5), translate=(10.0, 0, 0))
    widget = SegmentWidget(viewer)
    finish_with(widget, image, truths)
    cells = cell_layers(viewer)
    overview = viewer.layers["movie · run 1 · cells"]
    assert overview.data.shape == (6, 96, 96) and overview.axis_labels == ("t", "y", "x")
    assert viewer.dims.axis_labels[0] == "t"
    for t in range(6):
        viewer.dims.set_current_step(0, t)
        point = viewer.dims.point
        shown = []
        for layer in cells:
            k = int(round(layer.world_to_data(point)[0]))  # the plane napari shows at this slider position
            if 0 <= k < len(layer.data) and layer.data[k].any():
                shown.append(layer.data[k] != 0)
        assert len(shown) == len(truths[t])
        match = [[np.array_equal(mask, truths[t].mask(i)) for i in range(len(truths[t]))] for mask in shown]
        assert np.all(np.sum(match, axis=1) == 1) and np.all(np.sum(match, axis=0) == 1)  # the same cells, one to one
        assert int(round(overview.world_to_data(point)[0])) == int(round(image.world_to_data(point)[0])) == t
    # a cell keeps its number while it does not divide, so its layer spans several frames
    assert max(len(layer.data) for layer in cells) > 1
    frames, _ = L.cells_from_layers(cells, 6, (96, 96))
    for found, truth in zip(frames, truths):
        assert sorted(found.areas().tolist()) == sorted(truth.areas().tolist())


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
    # a checkpoint whose weights do not fit fails inside the worker, as one notification
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
    before = len(errors(env))
    widget.run()
    assert len(errors(env)) == before + 1
    assert "Segmentation failed" in errors(env)[-1] and "do not fit" in errors(env)[-1]
    assert [layer.name for layer in viewer.layers] == ["zstack", "ok"]
    assert not widget._run.native.isHidden() and widget._cancel.native.isHidden()
    # a device that is not there: said in the widget's words
    widget._model.value = env["shipped"] / "embedseg.safetensors"
    widget._device.value = "cuda" if not torch.cuda.is_available() else "mps"
    widget.run()
    assert "choose Device 'auto' or 'cpu' under Advanced" in errors(env)[-1] and "--device" not in errors(env)[-1]
    assert [layer.name for layer in viewer.layers] == ["zstack", "ok"]


def test_rgb_is_converted_with_a_warning_and_cancel_adds_nothing(make_napari_viewer, env):
    viewer = make_napari_viewer()
    viewer.add_image(np.repeat(embryo().image[:64, :64, None], 3, axis=2), name="colour", rgb=True)
    widget = SegmentWidget(viewer)
    widget._tta.value = False
    widget.run()
    assert any(level == "warning" and "greyscale" in message for level, message in env["notes"])
    assert viewer.layers["colour · run 1 · cells"].data.shape == (64, 64)
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


def test_the_rescale_switch_reaches_segmentation_and_the_model_is_loaded_once(make_napari_viewer, env, monkeypatch):
    import blastoseg.inference.predict as predict

    asked, real = [], predict.analyse_frames
    monkeypatch.setattr(predict, "analyse_frames", lambda *a, **k: asked.append(k["auto_scale"]) or real(*a, **k))
    loads, real_load = [], checkpoint.load
    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    viewer = make_napari_viewer()
    viewer.add_image(embryo().image[:96, :96], name="embryo")
    widget = SegmentWidget(viewer)
    widget._tta.value = False
    widget.run()
    widget._rescale.value = False
    widget.run()
    assert errors(env) == [] and asked == [True, False] and len(loads) == 1


def test_model_loading_is_a_progress_step(make_napari_viewer, env, monkeypatch):
    from blastoseg._napari._widgets import tasks

    shown = []
    original = tasks.Progress.begin
    monkeypatch.setattr(tasks.Progress, "begin", lambda self, stage, total=0: shown.append(stage) or original(self, stage, total))
    viewer = make_napari_viewer()
    viewer.add_image(embryo().image[:96, :96], name="embryo")
    widget = SegmentWidget(viewer)
    widget._tta.value = False
    widget.run()
    assert shown == ["loading the model", "segmenting", "preparing the layers", "adding the layers"]


def test_zona_and_fragments_join_the_run(viewer_with_embryo, env):
    from blastoseg.inference.embryo import Embryo, zona_labels

    viewer, widget, sample = viewer_with_embryo
    fragment = np.zeros((1, 128, 128), np.uint16)
    fragment[0, 5:9, 5:9] = 1
    zona = zona_labels(Embryo((64.0, 64.0), 60.0, 52.0, 0.9), (128, 128))[None]
    finish_with(widget.segment, viewer.layers["embryo"], [sample.instances], zona=zona, fragments=fragment)
    names = [layer.name for layer in viewer.layers][::-1]
    assert names[-3:] == ["embryo · run 1 · fragments", "embryo · run 1 · zona", "embryo"]
    roles = {L.tag(layer).get("role"): layer for layer in viewer.layers if L.tag(layer)}
    np.testing.assert_array_equal(roles["fragments"].data == 1, fragment[0] == 1)
    assert roles["zona"].data[64, 64] == 2 and roles["zona"].data[64, 64 + 56] == 1 and roles["zona"].data[0, 0] == 0
    assert roles["zona"].contour > 0  # drawn as outlines, not a filled disc over the embryo
    assert len(cell_layers(viewer)) == len(sample.instances)  # fragments are not cells
