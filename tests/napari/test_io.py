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
    assert widgets == {"Segment embryo", "Train on corrections", "Measure blastomeres"}
    samples = {s.display_name for s in manifest.contributions.sample_data}
    assert samples == {"Synthetic embryo", "Synthetic embryo time-lapse"}
    assert manifest.contributions.readers[0].filename_patterns == ["*_amodal.tif", "*_amodal.tiff"]


def test_reader_only_takes_amodal_files(tmp_path):
    assert _reader.get_reader(str(tmp_path / "x_amodal.tif")) is _reader.read_layers
    assert _reader.get_reader(str(tmp_path / "x.tif")) is None
    assert _reader.get_reader([str(tmp_path / "a_amodal.tif"), str(tmp_path / "b_amodal.tif")]) is None


def test_write_cell_layers_then_read_back_in_napari(make_napari_viewer, env, tmp_path):
    truth = embryo().instances.with_scores(np.array([0.9, 0.5, 0.7, 0.8], np.float32))
    viewer = make_napari_viewer()
    viewer.add_image(embryo().image, name="embryo")
    for data, kwargs, _ in L.result_layers([truth], "embryo", {"method": "embedseg", "model_sha256": "abc"}, "r1"):
        viewer.add_labels(data, **kwargs)
    path = tmp_path / "embryo_amodal.tif"
    cells = [layer for layer in viewer.layers if L.tag(layer).get("role") in ("cell", "visible")]
    viewer.layers.selection = set(cells)
    written = viewer.layers.save(str(path), selected=True, plugin="blastoseg")
    assert written == [str(path)]
    frames, provenance = io.read_amodal(path)
    assert provenance["method"] == "embedseg" and provenance["image"] == "embryo"
    restored = frames[0]
    match = restored.iou(truth).argmax(1)
    assert np.all(restored.iou(truth).max(1) == 1.0) and sorted(match) == [0, 1, 2, 3]
    np.testing.assert_allclose(restored.scores, truth.scores[match])
    np.testing.assert_array_equal(np.argsort(restored.depth), np.argsort(truth.depth[match]))
    # reading gives one packed layer that writes back to the very same instances
    (layer,) = viewer.open(str(path), plugin="blastoseg")
    assert L.tag(layer)["role"] == "packed" and L.tag(layer)["source"] == "embryo"
    again = tmp_path / "again_amodal.tif"
    viewer.layers.selection = {layer}
    viewer.layers.save(str(again), selected=True, plugin="blastoseg")
    assert io.read_amodal(again)[0][0] == restored
    viewer.open_sample("blastoseg", "timelapse")
    assert viewer.layers["synthetic time-lapse"].data.shape == (12, 192, 192)


def test_time_lapse_round_trip(tmp_path):
    a = np.zeros((40, 40), bool)
    a[5:20, 5:20] = True
    b = np.zeros((40, 40), bool)
    b[10:30, 10:30] = True
    frames = [Instances.from_mask_stack(a[None]), Instances.from_mask_stack(np.stack([a, b]), scores=[0.5, 0.6], depth=[1, 0])]
    io.write_amodal(tmp_path / "movie_amodal.tif", frames)
    ((data, kwargs, kind),) = _reader.read_layers(str(tmp_path / "movie_amodal.tif"))
    assert kind == "labels" and data.shape == (2, 2, 40, 40) and kwargs["name"] == "movie cells (packed)"
    source = L.LabelSource(kwargs["name"], data, kwargs["metadata"])
    out = _writer.write_amodal_layers(str(tmp_path / "copy_amodal.tif"), [(data, kwargs, kind)])
    assert io.read_amodal(out[0])[0] == frames
    assert L.instances_from_layers([source], 2, (40, 40)) == frames
