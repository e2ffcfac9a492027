"""The npe2 manifest, sample data, and the `*_amodal.tif` reader and writer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from blastoseg import io
from blastoseg._napari import _reader, _writer
from blastoseg._napari import layers as L
from blastoseg.instances import Instances
from tests.napari.support import embryo, env, tiny_checkpoint  # noqa: F401


def test_manifest_is_valid_and_importable():
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", "blastoseg", "--imports"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_manifest_contributions():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("blastoseg")
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"Segment, correct & measure"}  # one dock, with tabs
    samples = {s.display_name for s in manifest.contributions.sample_data}
    assert samples == {"Synthetic embryo", "Synthetic embryo time-lapse"}
    assert manifest.contributions.readers[0].filename_patterns == ["*_amodal.tif", "*_amodal.tiff"]
    assert manifest.on_activate == "blastoseg._napari._reader:activate"


def test_reader_only_takes_amodal_files(tmp_path):
    assert _reader.get_reader(str(tmp_path / "x_amodal.tif")) is _reader.read_layers
    assert _reader.get_reader(str(tmp_path / "x.tif")) is None
    assert _reader.get_reader([str(tmp_path / "a_amodal.tif"), str(tmp_path / "b_amodal.tif")]) is None


def _cells(viewer):
    return [layer for layer in viewer.layers if L.tag(layer).get("role") == "cell"]


def test_write_cell_layers_then_read_back_in_napari(make_napari_viewer, env, tmp_path):
    truth = embryo().instances.with_scores(np.array([0.9, 0.5, 0.7, 0.8], np.float32))
    viewer = make_napari_viewer()
    viewer.add_image(embryo().image, name="embryo")
    for data, kwargs, _ in L.result_layers([truth], "embryo", {"method": "embedseg", "model_sha256": "abc"}, "r1"):
        viewer.add_labels(data, **kwargs)
    path = tmp_path / "embryo_amodal.tif"
    viewer.layers.selection = set(_cells(viewer)) | {viewer.layers["embryo · run 1 · cells"]}
    written = viewer.layers.save(str(path), selected=True, plugin="blastoseg")
    assert written == [str(path)]
    frames, provenance = io.read_amodal(path)
    assert provenance["method"] == "embedseg" and provenance["image"] == "embryo"
    restored = frames[0]
    match = restored.iou(truth).argmax(1)
    assert np.all(restored.iou(truth).max(1) == 1.0) and sorted(match) == [0, 1, 2, 3]
    np.testing.assert_allclose(restored.scores, truth.scores[match])
    np.testing.assert_array_equal(np.argsort(restored.depth), np.argsort(truth.depth[match]))
    # reading gives the layers of a run, which write back to the very same instances
    layers = viewer.open(str(path), plugin="blastoseg")
    assert [x.name for x in layers][-1] == "embryo · embryo_amodal.tif · cells"
    assert {L.tag(x)["source"] for x in layers} == {"embryo"} and len({L.tag(x)["run"] for x in layers}) == 1
    again = tmp_path / "again_amodal.tif"
    viewer.layers.selection = set(layers)
    viewer.layers.save(str(again), selected=True, plugin="blastoseg")
    assert io.read_amodal(again)[0][0] == restored
    viewer.open_sample("blastoseg", "timelapse")
    assert viewer.layers["synthetic time-lapse"].data.shape == (12, 192, 192)


def test_viewer_open_alone_reads_amodal_files_with_blastoseg(make_napari_viewer, env, tmp_path, qtbot):
    from napari.settings import get_settings

    from blastoseg._napari._widgets.main import BlastosegWidget

    truth = embryo().instances
    io.write_amodal(tmp_path / "embryo_amodal.tif", truth, {"image": "embryo"})
    io.write_image(tmp_path / "plain.tif", embryo().image)
    viewer = make_napari_viewer()
    get_settings().plugins.extension2reader = {"*.tif": "napari"}  # a user who chose napari for TIFFs
    viewer.window.add_dock_widget(BlastosegWidget(viewer))
    assert list(get_settings().plugins.extension2reader)[:2] == ["*_amodal.tif", "*_amodal.tiff"]
    # File > Open and drag-and-drop go through the preferences: no reader to choose
    viewer.window._qt_viewer._qt_open([str(tmp_path / "embryo_amodal.tif")], stack=False)
    assert len(_cells(viewer)) == 4 and not any(x.name == "embryo_amodal" for x in viewer.layers)
    viewer.layers.clear()
    # viewer.open(path) reads with napari's builtin reader; the widget turns that into blastoseg's layers
    viewer.open(str(tmp_path / "embryo_amodal.tif"))
    qtbot.waitUntil(lambda: len(_cells(viewer)) == 4, timeout=5000)
    assert not any(x.name == "embryo_amodal" for x in viewer.layers)
    frames = L.instances_from_layers(_cells(viewer), 1, truth.shape)
    assert sorted(frames[0].areas().tolist()) == sorted(truth.areas().tolist())
    # other TIFFs are left to napari
    (plain,) = viewer.open(str(tmp_path / "plain.tif"))
    qtbot.wait(50)
    assert plain in viewer.layers and not L.tag(plain)
    # a user's choice for *_amodal.tif is kept
    get_settings().plugins.extension2reader = {"*_amodal.tif": "napari"}
    _reader.prefer_blastoseg()
    assert get_settings().plugins.extension2reader["*_amodal.tif"] == "napari"


def test_once_the_plugin_is_active_viewer_open_alone_reads_with_blastoseg(make_napari_viewer, env, tmp_path, qtbot):
    truth = embryo().instances
    io.write_amodal(tmp_path / "embryo_amodal.tif", truth, {"image": "embryo"})
    viewer = make_napari_viewer()
    _reader.activate()  # what npe2 calls on the first use of any blastoseg command, e.g. its sample data
    viewer.open(str(tmp_path / "embryo_amodal.tif"))
    qtbot.waitUntil(lambda: len(_cells(viewer)) == 4, timeout=5000)
    assert not any(x.name == "embryo_amodal" for x in viewer.layers)


def test_time_lapse_round_trip(tmp_path):
    a = np.zeros((40, 40), bool)
    a[5:20, 5:20] = True
    b = np.zeros((40, 40), bool)
    b[10:30, 10:30] = True
    frames = [Instances.from_mask_stack(a[None]), Instances.from_mask_stack(np.stack([a, b]), scores=[0.5, 0.6], depth=[1, 0])]
    io.write_amodal(tmp_path / "movie_amodal.tif", frames)
    items = _reader.read_layers(str(tmp_path / "movie_amodal.tif"))
    assert all(kind == "labels" for _, _, kind in items)
    assert items[-1][1]["name"] == "movie · movie_amodal.tif · cells" and items[-1][0].shape == (2, 40, 40)
    cells = [(d, k, kind) for d, k, kind in items if L.item_tag((d, k, kind))["role"] == "cell"]
    assert [d.shape[0] for d, _, _ in cells] == [1, 2]  # cell 2 from frame 1, cell 1 in both frames
    sources = [L.LabelSource(k["name"], d, k["metadata"]) for d, k, _ in cells]
    assert L.instances_from_layers(sources, 2, (40, 40)) == frames
    out = _writer.write_amodal_layers(str(tmp_path / "copy_amodal.tif"), items)
    assert io.read_amodal(out[0])[0] == frames
