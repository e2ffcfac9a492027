"""The benchmarks' shared parts, on data the tests make (a clone has no ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import datasets
from benchmarks.scoring import COCO_KEYS, DEFAULT_KEYS, scores
from blastoseg.instances import Instances


def test_missing_data_names_the_folder_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("BLASTOSEG_DATA", str(tmp_path))
    with pytest.raises(datasets.DataMissing) as caught:
        datasets.dsb("test")
    message = str(caught.value)
    assert str(tmp_path / "dsb2018") in message
    assert "BLASTOSEG_DATA" in message and "cleavage_embryo/" in message


def _disc(shape: tuple[int, int], cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _fake_cleavage_embryo(root, names_and_cells: dict[str, int]) -> None:
    import imageio.v3 as iio
    import tifffile

    shape = (64, 64)
    for sub in ("images", "masks", "fragments"):
        (root / "cleavage_embryo" / sub).mkdir(parents=True)
    for name, n_cells in names_and_cells.items():
        iio.imwrite(root / "cleavage_embryo" / "images" / f"{name}.JPG", np.full(shape, 120, np.uint8))
        planes = np.zeros((n_cells, *shape), np.uint16)  # one overlapping cell per plane
        for k in range(n_cells):
            planes[k][_disc(shape, 20 + 10 * k, 30, 12)] = k + 1
        tifffile.imwrite(root / "cleavage_embryo" / "masks" / f"{name}.tif", planes)
        fragments = np.zeros(shape, np.uint16)
        fragments[2:5, 2:5] = 1
        tifffile.imwrite(root / "cleavage_embryo" / "fragments" / f"{name}.tif", fragments)


def test_real_embryos_reads_frames_cells_fragments_and_hours(tmp_path, monkeypatch):
    _fake_cleavage_embryo(tmp_path, {"D2024.10.20_S01055_WELL06_RUN141": 2, "D2024.10.20_S01055_WELL06_RUN900": 3})
    monkeypatch.setenv("BLASTOSEG_DATA", str(tmp_path))
    frames = datasets.real_embryos()
    assert [f.name for f in frames] == ["D2024.10.20_S01055_WELL06_RUN141", "D2024.10.20_S01055_WELL06_RUN900"]
    assert [len(f.cells) for f in frames] == [2, 3]
    assert [f.hours for f in frames] == [32.0, None]
    first = frames[0]
    assert first.image.shape == (64, 64) and first.image.dtype == np.uint8
    assert first.fragments.dtype == np.uint16 and first.fragments.max() == 1
    assert (first.cells.areas() > 0).all() and first.cells.coverage().max() == 2  # the cells overlap


def test_scores_of_the_truth_against_itself_are_perfect():
    shape = (48, 48)
    truth = [Instances.from_mask_stack(np.stack([_disc(shape, 15, 15, 8), _disc(shape, 22, 25, 9)])),
             Instances.from_mask_stack(_disc(shape, 24, 24, 10)[None])]
    result = scores(truth, truth)
    assert list(result) == list(DEFAULT_KEYS)
    assert all(result[k] == 1.0 for k in ("mAP", "AP_dsb@0.50", "AP_dsb@0.75", "AP", "AP50", "AP75"))
    assert result["area_error_median"] == 0.0
    assert scores(truth, truth, COCO_KEYS)["AR100"] == 1.0


RECIPES = ("dsb", "embryo", "fcrnet_dsb", "isbi", "layered_shapes", "speed", "vqshape_embryo")


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_imports_as_a_module_with_a_main(recipe):
    import importlib

    module = importlib.import_module(f"benchmarks.{recipe}")
    assert callable(module.main) and f"python -m benchmarks.{recipe}" in module.__doc__
    assert "sys.path" not in Path(module.__file__).read_text()


def test_the_timelapse_benchmark_builds_a_folder_or_an_export_the_cli_reads(tmp_path):
    import os

    from benchmarks.speed import _timelapse_input, _tree_rss
    from blastoseg.batch.inputs import collect

    folder = _timelapse_input(tmp_path / "one", frames=3, side=64, wells=1)
    (task,) = collect([folder], as_timelapse=True, notice=lambda m: None)
    assert len(task.sources) == 3
    export = _timelapse_input(tmp_path / "two", frames=5, side=64, wells=2)
    tasks = collect([export], notice=lambda m: None)
    assert [t.name for t in tasks] == ["SLIDE_WELL01_F0", "SLIDE_WELL02_F0"] and [len(t.sources) for t in tasks] == [3, 2]
    total, largest = _tree_rss(os.getpid())
    assert total >= largest > 0
