"""Screenshots for docs/tutorial.md, taken from a real napari window of 1366 x 768 pixels.

Run under a display, e.g. a virtual one on a server:

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python docs/make_screenshots.py

It walks the tutorial in the blastoseg dock: sample embryo -> Segment -> Correct (a cell
to review, an ellipse drawn and turned into a cell) -> Train -> Measure, then the
sample time-lapse, and writes docs/figures/tutorial_{segment,correct,train,measure,
timelapse}.png. It uses models/vqshape.safetensors (the default, amodal) when present,
else a freshly initialised tiny model (which finds no cells; the pictures then show the
drawn cell only). Trained models go to a temporary folder, never to your own model folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("BLASTOSEG_SYNC_WORKERS", "1")  # run each step to its end before the picture

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
WINDOW = (1366, 768)


def _pick_model(tmp: Path) -> Path:
    from blastoseg import checkpoint
    from blastoseg.model import new_model

    shipped = ROOT / "models" / "vqshape.safetensors"
    if shipped.is_file():
        return shipped
    print("models/vqshape.safetensors not found: using an untrained tiny model", file=sys.stderr)
    tiny = new_model("layered", {"net_options": {"base": 8, "depth": 3, "full_res": 8}})
    return checkpoint.save(tiny, tmp / "tiny-layered.safetensors")


def _settle(rounds: int = 10) -> None:
    import time

    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.03)


def _grab(viewer, name: str) -> Path:
    import imageio.v3 as iio
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    _settle()
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):  # the messages hide the canvas
        toast.close()
    _settle()
    image = viewer.screenshot(canvas_only=False, flash=False)
    path = FIGURES / f"tutorial_{name}.png"
    iio.imwrite(path, np.asarray(image)[..., :3])
    print(f"wrote {path.relative_to(ROOT)} {image.shape[1]}x{image.shape[0]}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps for the training picture")
    args = parser.parse_args(argv)

    import napari

    from blastoseg import catalogue
    from blastoseg._napari import layers as L
    from blastoseg._napari._widgets import models
    from blastoseg._napari._widgets import train as train_module
    from blastoseg._napari._widgets.main import BlastosegWidget

    tmp = Path(tempfile.mkdtemp(prefix="blastoseg-docs-"))
    catalogue.user_models_dir = lambda: tmp / "user-models"  # keep the user's folder clean
    train_module.CROP_MAX = 128
    FIGURES.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="blastoseg tutorial")
    viewer.window._qt_window.resize(*WINDOW)
    viewer.open_sample("blastoseg", "embryo")
    image = viewer.layers["synthetic embryo"]
    dock = BlastosegWidget(viewer)
    viewer.window.add_dock_widget(dock, name="blastoseg", area="right")
    segment, correct, train, measure = dock.segment, dock.correct, dock.train, dock.measure
    model = _pick_model(tmp)
    if model not in models.available().values():
        models.open_checkpoint(model)
        segment.reset_choices()
    segment._model.value = model

    # 1. segment: the overview shows every cell's whole outline
    segment.run()
    viewer.layers.selection.active = L.runs(viewer.layers, image.name)[-1].overview
    _grab(viewer, "segment")

    # 2. correct: a cell picked from the review list, then an ellipse drawn and made a cell
    dock.tabs.setCurrentIndex(1)
    run = L.runs(viewer.layers, image.name)[-1]
    cells = sorted(run.cells, key=lambda x: L.tag(x)["cell"])
    if correct._flags:
        correct._review.value = [0]
    elif cells:
        dock.results.pick(run.run, L.tag(cells[0])["cell"])
    correct.shape_to_cell()
    shapes = viewer.layers.selection.active
    h, w = image.data.shape
    shapes.add_ellipses(np.array([[0.72 * h, 0.3 * w], [0.1 * h, 0.08 * w]]))
    _grab(viewer, "draw")
    correct.shape_to_cell()
    _grab(viewer, "correct")

    # 3. train on the corrections (the training frame's score is the orange curve)
    train._start.value = model  # fine-tune the model that segmented
    train._unit.value, train._amount.value = "steps", args.steps
    train.run()
    _grab(viewer, "train")

    # 4. measure the corrected run
    dock.tabs.setCurrentIndex(2)
    measure.reset_choices()
    measure._image.value = image
    measure.run()
    _grab(viewer, "measure")

    # 5. a time-lapse: every layer lines up with the frame the slider shows
    for layer in list(viewer.layers):
        viewer.layers.remove(layer)
    viewer.open_sample("blastoseg", "timelapse")
    movie = viewer.layers["synthetic time-lapse"]
    dock.tabs.setCurrentIndex(0)
    segment.reset_choices()
    segment._image.value = movie
    segment._model.value = model
    segment.run()
    viewer.dims.set_current_step(0, 7)
    viewer.layers.selection.active = L.runs(viewer.layers, movie.name)[-1].overview
    _grab(viewer, "timelapse")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
