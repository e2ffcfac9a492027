"""The "Segment embryo" dock widget: image layer -> amodal cell layers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    Select,
    SpinBox,
)

from blastoseg._napari import layers as L
from blastoseg._napari._widgets import models
from blastoseg._napari._widgets.common import (
    DEVICES,
    follow_layers,
    image_frames,
    layer_choices,
)
from blastoseg._napari._widgets.tasks import (
    CANCELLED,
    Progress,
    Task,
    error_message,
    notify,
    pump,
)
from blastoseg.files import fragment_labels
from blastoseg.inference.embryo import zona_labels

if TYPE_CHECKING:
    import napari


class SegmentWidget(Container):
    """Pick an image and a model, run; results always go to new layers."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._image = ComboBox(label="Image", choices=layer_choices(viewer, "image"))
        self._model = ComboBox(label="Model", choices=models.choices)
        self._open = PushButton(text="Load checkpoint…")
        self._device = ComboBox(label="Device", choices=DEVICES, value="auto")
        self._tta = CheckBox(text="Test-time augmentation (8 views)", value=True)
        self._tile = SpinBox(label="Tile size (0 = auto)", value=0, min=0, max=8192, step=64)
        self._rescale = CheckBox(text="Shrink frames whose cells are larger than the model's training cells", value=True)
        self._run = PushButton(text="Run")
        self._cancel = PushButton(text="Cancel", visible=False)
        self._add_cell = PushButton(text="Add cell")
        self._review_below = FloatSpinBox(label="Review below", value=0.5, min=0.0, max=1.0, step=0.05)
        self._review = Select(label="Review", choices=[])
        self._status = Label(value="")
        self.extend([self._image, self._model, self._open, self._device, self._tta, self._tile, self._rescale, self._run, self._cancel,
                     self._add_cell, self._review_below, self._review, self._status])
        self._task: Task | None = None
        self._last: tuple[Any, ...] | None = None  # (frames of Instances, layers by cell, packed layer)
        self._review_items: list[tuple[Any, int, int]] = []
        self._model.value = models.default_model(models.available())
        self._open.changed.connect(self._ask_checkpoint)
        self._run.changed.connect(self.run)
        self._cancel.changed.connect(self.cancel)
        self._add_cell.changed.connect(self.add_cell)
        self._review_below.changed.connect(self._fill_review)
        self._review.changed.connect(self._select_review)
        models.on_models_changed(self, self._models_changed)
        self._review.native.setMaximumHeight(90)  # a list, not the whole dock
        follow_layers(viewer, self)

    # ------------------------------------------------------------------ models
    def _models_changed(self) -> None:
        current = self._model.value
        self._model.reset_choices()
        if current is None or current not in self._model.choices:
            self._model.value = models.default_model(models.available())

    def _ask_checkpoint(self) -> None:
        path = models.ask_checkpoint_path()
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path: str | Path) -> None:
        """Offer a checkpoint file in the model list and select it; a bad file is reported."""
        try:
            chosen = models.open_checkpoint(path)
        except (ValueError, OSError) as error:
            notify("error", f"Cannot use {Path(path).name} as a model: {error_message(error)}")
            return
        self._model.reset_choices()
        self._model.value = chosen

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Segment the chosen image in a worker; layers are added when it finishes."""
        if self._task is not None:
            return
        layer = self._image.value
        if layer is not None and self._model.value is None:  # before reading (copying) the frames
            notify("error", "No model to segment with: train one in 'Train on corrections' or use 'Load checkpoint…'")
            return
        frames = self._frames_of(layer, "No image layer to segment: open an image, or File > Open Sample > blastoseg > Synthetic embryo")
        if frames is None:
            return
        if len(frames) > 1:
            notify("info", f"Segmenting {layer.name!r} as a time-lapse of {len(frames)} frames (a 3D image is read as "
                           "(T, H, W)); for a z-stack, pick one plane first")
        path, device, tta, tile = Path(self._model.value), self._device.value, self._tta.value, self._tile.value or None
        rescale = self._rescale.value

        def work():  # noqa: ANN202 - a generator for the worker
            from blastoseg import checkpoint
            from blastoseg.inference.predict import analyse_frames

            model = checkpoint.load(path, device)
            found = yield from pump(lambda progress: analyse_frames(frames, model, tta=tta, tile=tile, device=device,
                                                                          auto_scale=rescale, progress=progress))
            return model, found

        progress = Progress(f"Segmenting {layer.name}", self.cancel)
        self._task = Task(work, lambda p: progress.set(*p), lambda result: self._finished(layer, result),
                          self._failed, lambda: self._idle(progress))
        self._set_running(True)
        self._task.start()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._status.value = "cancelling…"

    def _set_running(self, running: bool) -> None:
        self._run.visible, self._cancel.visible = not running, running
        self._status.value = "segmenting…" if running else ""

    def _idle(self, progress: Progress) -> None:
        progress.close()
        self._task = None
        self._set_running(False)

    def _failed(self, error: BaseException) -> None:
        notify("error", f"Segmentation failed: {error_message(error)}")

    def _finished(self, layer: Any, result: Any) -> None:
        if result is CANCELLED:
            notify("info", "Segmentation cancelled; no layers were added")
            return
        model, results = result
        frames = [r.cells for r in results]
        provenance = {"method": model.method.name, "model": model.name, "model_sha256": model.sha256}
        geometry = {"scale": list(layer.scale), "translate": list(layer.translate)}
        shape = frames[0].shape
        zona = fragments = None
        if any(r.embryo is not None for r in results):
            zona = np.stack([zona_labels(r.embryo, shape) if r.embryo else np.zeros(shape, np.uint8) for r in results])
        if any(r.fragments is not None for r in results):
            fragments = np.stack([fragment_labels(r.fragments, shape) for r in results])
        layers = L.result_layers(frames, layer.name, provenance, L.new_run_id(), **geometry, zona=zona, fragments=fragments)
        added = [self._viewer.add_labels(data, **kwargs) for data, kwargs, _ in layers]
        by_cell = {L.tag(a)["cell"]: a for a in added if L.tag(a).get("role") == "cell"}
        packed = next((a for a in added if L.tag(a).get("role") == "packed"), None)
        self._last = (frames, by_cell, packed)
        self._fill_review()
        n = sum(len(f) for f in frames)
        notify("info", f"{layer.name}: found {n} cell{'s' * (n != 1)}" + (f" in {len(frames)} frames" if len(frames) > 1 else ""))

    # ------------------------------------------------------------------ review
    def _fill_review(self) -> None:
        if self._last is None:
            return
        frames, by_cell, packed = self._last
        items = [(float(s), t, i + 1) for t, f in enumerate(frames) for i, s in enumerate(f.scores) if s < self._review_below.value]
        items.sort()
        self._review_items = [((by_cell.get(cell) if packed is None else packed), t, cell) for _, t, cell in items]
        text = [f"cell {c} ({s:.2f})" if len(frames) == 1 else f"frame {t} cell {c} ({s:.2f})" for s, t, c in items]
        self._review.choices = [(label, k) for k, label in enumerate(text)]
        self._status.value = f"{len(items)} low-confidence cell{'s' * (len(items) != 1)} to review" if items else ""

    def _select_review(self, value: list[int]) -> None:
        if not value:
            return
        layer, frame, cell = self._review_items[value[-1]]
        if layer is None or layer not in self._viewer.layers:
            return
        self._viewer.layers.selection.active = layer
        layer.visible = True
        layer.selected_label = cell
        if np.ndim(layer.data) == 4:
            self._viewer.dims.set_current_step(0, frame)

    @staticmethod
    def _frames_of(layer: object, missing: str) -> np.ndarray | None:
        """The layer's (T, H, W) frames, or None after telling the user why not."""
        if layer is None:
            notify("error", missing)
            return None
        try:
            return image_frames(layer)
        except ValueError as error:
            notify("error", error_message(error))
            return None

    # ------------------------------------------------------------------ annotation
    def add_cell(self) -> None:
        """A new empty cell layer linked to the image, ready to paint its whole (amodal) extent."""
        layer = self._image.value
        frames = self._frames_of(layer, "No image layer: choose the image the new cell belongs to")
        if frames is None:
            return
        linked = L.linked_layers(self._viewer.layers, layer.name)
        run = L.tag(linked[-1]).get("run") if linked else L.new_run_id()
        numbers = [int(L.tag(x).get("cell", 0)) for x in linked]
        numbers += [int(np.max(x.data)) for x in linked if L.tag(x).get("role") in ("packed", "visible")]
        cell = max(numbers, default=0) + 1
        shape = frames.shape[1:] if len(frames) == 1 else frames.shape
        data, kwargs, _ = L.empty_cell_layer(layer.name, shape, cell, run, len(frames), list(layer.scale), list(layer.translate))
        new = self._viewer.add_labels(data, **kwargs)
        new.selected_label = cell
        new.mode = "paint"
        new.brush_size = max(5, int(min(shape[-2:]) / 40))
        self._viewer.layers.selection.active = new
