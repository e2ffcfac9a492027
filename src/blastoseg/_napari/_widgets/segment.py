"""The "Segment" step: image layer -> one run of result layers (see `layers`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    ProgressBar,
    PushButton,
    SpinBox,
)

from blastoseg._napari import layers as L
from blastoseg._napari._widgets import models
from blastoseg._napari._widgets.common import (
    DEVICES,
    fold,
    follow_layers,
    full_width,
    image_frames,
    layer_choices,
    plane_geometry,
    row,
    status_line,
)
from blastoseg._napari._widgets.results import Results
from blastoseg._napari._widgets.tasks import (
    CANCELLED,
    Progress,
    Stage,
    Task,
    error_message,
    hold_collections,
    imports_without_stalls,
    notify,
    pump,
    release_collections,
)

if TYPE_CHECKING:
    import napari


class SegmentWidget(Container):
    """Pick an image and a model, run. Each run's layers form one group named
    "<image> · run N"; a new run replaces the image's earlier runs unless they were
    edited (those are hidden and kept) or "Keep earlier runs" is ticked."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.results = Results.of(viewer)
        self._image = ComboBox(label="Image", choices=layer_choices(viewer, "image"))
        self._model = ComboBox(label="Model", choices=models.choices)
        self._run = PushButton(text="Run")
        self._cancel = PushButton(text="Cancel", visible=False)
        self._status = status_line()
        self._bar = ProgressBar(value=0, visible=False)
        self._open = PushButton(text="Load checkpoint…")
        self._device = ComboBox(label="Device", choices=DEVICES, value="auto")
        self._tta = CheckBox(text="Test-time augmentation (8 views)", value=True)
        self._tile = SpinBox(label="Tile size", value=0, min=0, max=8192, step=64, tooltip="0 = automatic")
        self._rescale = CheckBox(text="Shrink frames whose cells are too large", value=True,
                                 tooltip="segment again, shrunk, a frame whose cells are far larger than the model's training cells")
        self._keep = CheckBox(text="Keep earlier runs", value=False,
                              tooltip="off: a new run replaces the image's earlier runs (edited ones are hidden, not removed)")
        self.extend([self._image, self._model, row(self._run, self._cancel)])
        full_width(self, self._bar, self._status)
        self.advanced = fold(self, "Advanced", [self._open, self._device, self._tta, self._tile, self._rescale, self._keep])
        self._task: Task | None = None
        self._feeder: Any = None
        self._progress: Progress | None = None
        self._loaded: tuple[Any, Any] | None = None  # (file key, Model): the last model, kept for the next run
        self.last: list[Any] = []  # the layers of the last run
        self._model.value = models.default_model(models.available())
        self._open.changed.connect(self._ask_checkpoint)
        self._run.changed.connect(self.run)
        self._cancel.changed.connect(self.cancel)
        models.on_models_changed(self, self._models_changed)
        follow_layers(viewer, self, [self.advanced])

    def reset_choices(self, *args: Any) -> None:
        super().reset_choices(*args)
        self.advanced.reset_choices(*args)

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

    def _load(self, path: Path, device: str) -> Any:
        """The model at `path` on `device`, loaded once for as long as the file is unchanged."""
        from blastoseg import checkpoint

        stat = os.stat(path)
        key = (str(path), stat.st_mtime_ns, stat.st_size, device)
        if self._loaded is None or self._loaded[0] != key:
            with imports_without_stalls():
                self._loaded = (key, checkpoint.load(path, device))
        return self._loaded[1]

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Segment the chosen image in a worker; its layers are added as it finishes."""
        if self._task is not None or self._feeder is not None:
            return
        layer = self._image.value
        if layer is not None and self._model.value is None:  # before reading (copying) the frames
            notify("error", "No model to segment with: train one under 'Correct & train', or use Advanced > 'Load checkpoint…'")
            return
        frames = self._frames_of(layer, "No image layer to segment: open an image, or File > Open Sample > blastoseg > Synthetic embryo")
        if frames is None:
            return
        device = self._device.value
        if len(frames) > 1:
            notify("info", f"Segmenting {layer.name!r} as a time-lapse of {len(frames)} frames (a 3D image is read as "
                           "(T, H, W)); for a z-stack, pick one plane first")
        path, tta, tile, rescale = Path(self._model.value), self._tta.value, self._tile.value or None, self._rescale.value
        name = L.run_name(layer.name, L.next_run_number(self._viewer.layers, layer.name))
        scale, translate = plane_geometry(layer)
        image_name = layer.name

        def work():  # noqa: ANN202 - a generator for the worker
            yield Stage("loading the model")
            model = self._load(path, device)
            from blastoseg.inference.predict import analyse_frames

            yield Stage("segmenting")
            found = yield from pump(lambda progress: analyse_frames(frames, model, tta=tta, tile=tile, device=device,
                                                                    auto_scale=rescale, progress=progress))
            yield Stage("preparing the layers")
            return model, found, build_layers(found, image_name, model, name, scale, translate)

        self._progress = Progress(self._bar, self.cancel)
        hold_collections()
        self._task = Task(work, self._progress.show, lambda result: self._finished(layer, result), self._failed, self._worker_done)
        self._set_running(True)
        self._task.start()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._status.value = "cancelling…"
        elif self._feeder is not None:
            self._feeder.cancel()

    def _set_running(self, running: bool) -> None:
        self._run.visible, self._cancel.visible = not running, running
        if running:
            self._status.value = "segmenting…"

    def _worker_done(self) -> None:
        self._task = None
        if self._feeder is None:  # nothing more to add
            self._idle()

    def _idle(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
            release_collections()
        self._feeder = None
        self._set_running(False)

    def _failed(self, error: BaseException) -> None:
        self._status.value = "segmentation failed"
        notify("error", f"Segmentation failed: {error_message(error)}")

    def _finished(self, layer: Any, result: Any) -> None:
        if result is CANCELLED:
            self._status.value = "cancelled; no layers were added"
            notify("info", "Segmentation cancelled; no layers were added")
            return
        _, results, items = result
        self.finish(layer, [r.cells for r in results], items)

    def finish(self, layer: Any, frames: list[Any], items: list[L.LayerData]) -> None:
        """Add a run's layers (`build_layers`) for `layer`, replacing or hiding earlier runs."""
        earlier = self.results.runs(layer.name)
        keep = self._keep.value
        remove = [] if keep else [r for r in earlier if not Results.edited(r)]
        hide = [r for r in earlier if r not in remove]
        n = sum(len(f) for f in frames)
        name = next((L.item_tag(it).get("run_name") for it in items), layer.name)
        if self._progress is None:  # called without a run (a result made elsewhere)
            hold_collections()
            self._progress = Progress(self._bar, self.cancel)
        progress = self._progress
        # busy, not counted: every move of a progress bar repaints the window at once
        progress.begin("adding the layers", 1)

        def done(added: list[Any]) -> None:
            self.last = added
            if self._feeder.cancelled:
                for x in added:
                    if x in self._viewer.layers:
                        self._viewer.layers.remove(x)
                self.last = []
                self._status.value = "cancelled; no layers were added"
                notify("info", "Segmentation cancelled; no layers were added")
            else:
                self._status.value = self._summary(name, frames, remove, hide)
                notify("info", f"{layer.name}: found {n} cell{'s' * (n != 1)}"
                       + (f" in {len(frames)} frames" if len(frames) > 1 else ""))
            self._feeder = None
            if self._task is None:
                self._idle()

        self._feeder = self.results.add_run(items, remove, hide, on_done=done, start=False)
        self._feeder.start()

    def _summary(self, name: str, frames: list[Any], removed: list[L.Run], hidden: list[L.Run]) -> str:
        n = sum(len(f) for f in frames)
        text = f"{name}: {n} cell{'s' * (n != 1)}" + (f" in {len(frames)} frames" if len(frames) > 1 else "")
        run = next((L.tag(x).get("run") for x in self.last), None)
        flagged = len(self.results.review(run)) if run else 0
        if flagged:
            text += f" · {flagged} to review under 'Correct & train'"
        if removed:
            text += f" · replaced {', '.join(r.name.split(L.SEP)[-1] for r in removed)}"
        if hidden:
            text += f" · hid {', '.join(r.name.split(L.SEP)[-1] for r in hidden)} ({'kept' if self._keep.value else 'edited'})"
        return text

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


def build_layers(results: list[Any], image_name: str, model: Any, name: str, scale: list[float],
                 translate: list[float]) -> list[L.LayerData]:
    """A run's layer data from `analyse_frames` results (built in the worker thread)."""
    from blastoseg.files import fragment_stack, zona_stack

    frames = [r.cells for r in results]
    shape = frames[0].shape
    provenance = {"method": model.method.name, "model": model.name, "model_sha256": model.sha256}
    zona, fragments = zona_stack(results, shape), fragment_stack(results, shape)
    return L.result_layers(frames, image_name, provenance, L.new_run_id(), name, scale, translate, zona=zona, fragments=fragments)
