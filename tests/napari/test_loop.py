"""The whole loop as a new user does it, and the same widgets with real worker threads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blastoseg import catalogue
from blastoseg._napari import layers as L
from blastoseg._napari._sample_data import embryo_sample
from blastoseg._napari._widgets import tasks
from blastoseg._napari._widgets.measure import MeasureWidget
from blastoseg._napari._widgets.segment import SegmentWidget
from blastoseg._napari._widgets.train import TrainWidget
from tests.napari.support import env, errors, tiny_checkpoint  # noqa: F401


def _widgets(viewer):
    widgets = SegmentWidget(viewer), TrainWidget(viewer), MeasureWidget(viewer)
    for widget in widgets:
        viewer.window.add_dock_widget(widget)
    return widgets


def test_sample_segment_correct_train_segment_export(make_napari_viewer, env, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("blastoseg", "embryo")
    assert viewer.layers["synthetic embryo"].data.shape == (256, 256)
    segment, train, measure = _widgets(viewer)
    segment.run()
    first_run = {L.tag(x)["run"] for x in viewer.layers if L.tag(x)}
    # correct one cell: add it and paint its whole extent, the hidden part included
    truth = embryo_sample().instances
    k = int(np.argmax(truth.occlusion_rates()))
    segment.add_cell()
    cell = viewer.layers[-1]
    cell.data_setitem(np.nonzero(truth.mask(k)), cell.selected_label)
    # train (the tutorial uses 1 minute; 2 steps here) and segment again with the new model
    train._unit.value, train._amount.value = "steps", 2
    train.run()
    assert train.output.is_file() and train.output in segment._model.choices
    segment._model.value = train.output
    segment._tta.value = False
    segment.run()
    assert errors(env) == []
    new_sha = catalogue.file_sha256(train.output)
    newest = L.linked_layers(viewer.layers, "synthetic embryo")
    assert newest and {L.tag(x)["model_sha256"] for x in newest} == {new_sha}
    assert {L.tag(x)["run"] for x in newest}.isdisjoint(first_run)
    # export: the newest run's table carries the new model's provenance ...
    measure.run()
    cells_csv, frames_csv = measure.export(tmp_path / "loop.csv")
    frames = pd.read_csv(frames_csv)
    assert frames["model_sha256"].tolist() == [new_sha] and frames["image"].tolist() == ["synthetic embryo"]
    # ... and the corrected cell measures exactly as the truth
    measure._cells.value = [cell]
    measure.run()
    cells = pd.read_csv(measure.export(tmp_path / "corrected.csv")[0])
    assert cells["area_px"].tolist() == [int(truth.areas()[k])]
    assert cells["cell"].tolist() == [L.tag(cell)["cell"]]


@pytest.fixture
def threaded(env, monkeypatch):
    monkeypatch.setattr(tasks, "SYNC", False)
    return env


def test_segment_and_train_in_worker_threads(make_napari_viewer, threaded, qtbot):
    viewer = make_napari_viewer()
    sample = embryo_sample()
    viewer.add_image(sample.image[:128, :128], name="embryo")
    segment, train, _ = _widgets(viewer)
    segment.run()
    assert not segment._cancel.native.isHidden()  # Run swaps to Cancel while working
    qtbot.waitUntil(lambda: segment._task is None, timeout=60_000)
    assert viewer.layers["embryo visible cells"].data.shape == (128, 128)
    for data, kwargs, _ in L.result_layers([sample.instances.cropped(0, 0, 128, 128)], "embryo", {}, "truth"):
        viewer.add_labels(data, **kwargs)
    train._unit.value, train._amount.value = "steps", 40
    train.run()
    train.cancel()  # while the first step runs
    qtbot.waitUntil(lambda: train._task is None, timeout=60_000)
    assert len(train.history) <= 1 and not train.output.exists()  # stopped before or right after step 1
    assert any("before the first checkpoint" in message for _, message in threaded["notes"])
    assert errors(threaded) == []
