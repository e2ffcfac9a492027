"""Shared fixtures of the napari tests (imported by the test_napari_* modules).

Workers run inline (`tasks.SYNC`), model folders point into tmp_path, a tiny EmbedSeg
checkpoint stands in for the shipped model, and notifications are recorded instead of shown.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from blastoseg import catalogue, checkpoint, synth
from blastoseg.model import new_model

TINY = {"net_options": {"base": 4, "depth": 2, "full_res": 4}}
EMBRYO = {"shape": (128, 128), "n_cells": 4, "seed": 5}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "embedseg.safetensors"
    return checkpoint.save(new_model("embedseg", TINY), path)


@pytest.fixture
def env(tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Inline workers, private model folders (the tiny model shipped as "embedseg") and recorded notifications."""
    from napari.utils import notifications

    from blastoseg._napari._widgets import models, tasks, train

    shipped, user = tmp_path / "shipped", tmp_path / "user"
    shipped.mkdir()
    shutil.copy(tiny_checkpoint, shipped / "embedseg.safetensors")
    monkeypatch.setattr(catalogue, "shipped_models_dir", lambda: shipped)
    monkeypatch.setattr(catalogue, "user_models_dir", lambda: user)
    monkeypatch.setattr(models, "_opened", {})
    monkeypatch.setattr(tasks, "SYNC", True)
    monkeypatch.setattr(train, "BATCH", 2)
    monkeypatch.setattr(train, "CROP_MAX", 64)
    notes: list[tuple[str, str]] = []
    for level in ("error", "warning", "info"):
        monkeypatch.setattr(notifications, f"show_{level}", lambda message, level=level: notes.append((level, str(message))))
    return {"notes": notes, "shipped": shipped, "user": user, "tmp": tmp_path}


def errors(env: dict) -> list[str]:
    return [message for level, message in env["notes"] if level == "error"]


def embryo() -> synth.Sample:
    return synth.synth_embryo(**EMBRYO)


def add_truth_cells(viewer, image_name: str, truth, run: str = "truth") -> list:
    """Ground truth (Instances, or a list per frame) as a run's layers, as a segmentation adds them."""
    from blastoseg._napari import layers as L

    frames = truth if isinstance(truth, list) else [truth]
    provenance = {"method": "ground truth", "model_sha256": ""}
    name = L.run_name(image_name, L.next_run_number(viewer.layers, image_name))
    return [viewer.add_labels(d, **k) for d, k, _ in L.result_layers(frames, image_name, provenance, run, name)]


def finish_with(widget, image_layer, frames, zona=None, fragments=None) -> list:
    """What a segmentation run that found `frames` (Instances per frame) does, without a model."""
    from blastoseg._napari import layers as L
    from blastoseg._napari._widgets.common import plane_geometry

    name = L.run_name(image_layer.name, L.next_run_number(widget._viewer.layers, image_layer.name))
    scale, translate = plane_geometry(image_layer)
    items = L.result_layers(frames, image_layer.name, {"method": "ground truth", "model_sha256": ""}, L.new_run_id(), name,
                            scale, translate, zona=zona, fragments=fragments)
    widget.finish(image_layer, frames, items)
    return widget.last


def cell_layers(viewer, run: str | None = None) -> list:
    from blastoseg._napari import layers as L

    return [x for x in viewer.layers if L.tag(x).get("role") == "cell" and (run is None or L.tag(x)["run"] == run)]


def layer_snapshot(viewer) -> list[tuple[str, bytes]]:
    """Names and data of all layers, to prove that nothing was changed."""
    return [(layer.name, np.asarray(layer.data).tobytes()) for layer in viewer.layers]
