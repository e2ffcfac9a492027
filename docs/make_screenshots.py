"""Screenshots for docs/tutorial.md, taken from a real napari window.

Run under a display, e.g. a virtual one on a server:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

It walks the tutorial: sample embryo -> segment -> correct one cell -> train -> measure,
and writes docs/figures/tutorial_{segment,train,measure}.png. It uses
models/vqshape.safetensors (the default, amodal) when present, else a freshly initialised tiny model (which
finds no cells; the pictures then show the corrected cells only). Trained models go
to a temporary folder, never to your own model folder.
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


def _pick_model(tmp: Path) -> Path:
    from blastoseg import checkpoint
    from blastoseg.model import new_model

    shipped = ROOT / "models" / "vqshape.safetensors"
    if shipped.is_file():
        return shipped
    print("models/vqshape.safetensors not found: using an untrained tiny model", file=sys.stderr)
    tiny = new_model("layered", {"net_options": {"base": 8, "depth": 3, "full_res": 8}})
    return checkpoint.save(tiny, tmp / "tiny-layered.safetensors")


def _grab(viewer, name: str) -> Path:
    import imageio.v3 as iio
    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    image = viewer.screenshot(canvas_only=False, flash=False)
    path = FIGURES / f"tutorial_{name}.png"
    iio.imwrite(path, np.asarray(image)[..., :3])
    print(f"wrote {path.relative_to(ROOT)} {image.shape[1]}x{image.shape[0]}")
    return path


def _show_only(viewer, dock_name: str) -> None:
    """Raise one dock widget (the others stay tabbed behind it)."""
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    viewer.window.dock_widgets[dock_name].native.parent().raise_()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps for the training picture")
    args = parser.parse_args(argv)

    import napari

    from blastoseg import catalogue
    from blastoseg._napari import layers as L
    from blastoseg._napari._sample_data import embryo_sample
    from blastoseg._napari._widgets import models
    from blastoseg._napari._widgets import train as train_module
    from blastoseg._napari._widgets.measure import MeasureWidget
    from blastoseg._napari._widgets.segment import SegmentWidget
    from blastoseg._napari._widgets.train import TrainWidget

    tmp = Path(tempfile.mkdtemp(prefix="blastoseg-docs-"))
    catalogue.user_models_dir = lambda: tmp / "user-models"  # keep the user's folder clean
    train_module.CROP_MAX = 128
    FIGURES.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="blastoseg tutorial")
    viewer.window._qt_window.resize(1500, 960)
    viewer.open_sample("blastoseg", "embryo")
    image = viewer.layers["synthetic embryo"]

    # 1. segment
    segment = SegmentWidget(viewer)
    train = TrainWidget(viewer)
    measure = MeasureWidget(viewer)
    # napari shows the last tabified dock; the first picture needs Segment in front
    viewer.window.add_dock_widget(measure, name="Measure blastomeres", area="right")
    viewer.window.add_dock_widget(train, name="Train on corrections", area="right", tabify=True)
    viewer.window.add_dock_widget(segment, name="Segment embryo", area="right", tabify=True)
    model = _pick_model(tmp)
    if model not in models.available().values():
        models.open_checkpoint(model)
        segment.reset_choices()
    segment._model.value = model
    _show_only(viewer, "Segment embryo")
    segment.run()
    found = [x for x in viewer.layers if L.tag(x).get("role") == "cell"]
    for layer in found:
        layer.contour = 2  # outlines show where amodal cells overlap
    _grab(viewer, "segment")

    # 2. correct one cell (as a user would paint it: its whole extent), then train
    truth = embryo_sample().instances
    k = int(np.argmax(truth.occlusion_rates()))
    segment.add_cell()
    cell = viewer.layers[-1]
    cell.data_setitem(np.nonzero(truth.mask(k)), cell.selected_label)
    cell.mode = "pan_zoom"
    train._start.value = model  # fine-tune the model that segmented
    train._unit.value, train._amount.value = "steps", args.steps
    _show_only(viewer, "Train on corrections")
    train.run()
    _grab(viewer, "train")

    # 3. segment again with the new model, then measure
    segment._model.value = train.output
    segment.run()
    measure.reset_choices()
    measure._image.value = image
    newest = L.linked_layers(viewer.layers, image.name)
    if not any(L.tag(x).get("role") == "cell" for x in newest):
        # An untrained stand-in model finds nothing: measure the corrected cell instead.
        measure._cells.value = [cell]
    _show_only(viewer, "Measure blastomeres")
    measure.native.setMinimumWidth(620)  # room for the table's columns
    measure.run()
    _grab(viewer, "measure")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
