"""The "Train on your corrections" step: corrected layers -> a new model in the user's folder."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    Select,
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
    mpl_canvas,
    resolve_choices,
    result_choices,
    row,
    status_line,
)
from blastoseg._napari._widgets.tasks import (
    CANCELLED,
    Task,
    error_message,
    hold_collections,
    imports_without_stalls,
    notify,
    release_collections,
)

if TYPE_CHECKING:
    import napari

BATCH = 4
CROP_MAX = 256  # training crops; smaller is faster (tests use 64)
MAX_VALIDATION_IMAGES = 4
SCORE_POINTS = 8  # a minutes budget is scored about this many times (the plot's points)
SCORE_LABEL = "AP50 on your frames"  # what the orange curve is: the training frames, not held-out ones


SCRATCH = "new model (from scratch)"  # a string: magicgui does not report a change to None


def _start_choices(_widget: object = None) -> list[tuple[str, Any]]:
    return [(SCRATCH, SCRATCH), *models.choices()]


def unique_model_path(name: str) -> Path:
    """A not yet used file in the user's model folder for `name`."""
    from blastoseg import catalogue

    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"
    folder = catalogue.user_models_dir()
    taken = set(catalogue.list_models())  # a shipped model's name would be shadowed
    path, k = folder / f"{stem}.safetensors", 2
    while path.exists() or path.stem in taken:
        path, k = folder / f"{stem}-{k}.safetensors", k + 1
    return path


class TrainWidget(Container):
    """Fine-tune (or train from scratch) on the image's corrected layers; Cancel keeps the best model so far."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from blastoseg.methods import method_names

        super().__init__(labels=True)
        self._viewer = viewer
        self._image = ComboBox(label="Image", choices=layer_choices(viewer, "image"))
        self._annotations = Select(label="Annotations", choices=result_choices(viewer),
                                   tooltip="results or Labels layers to learn from; none selected = the image's newest result")
        self._start = ComboBox(label="Start from", choices=_start_choices)
        self._method = ComboBox(label="Method (new model)", choices=method_names())
        self._amount = FloatSpinBox(label="Budget", value=1.0, min=0.05, max=100000, step=1)
        self._unit = ComboBox(label="Budget unit", choices=["minutes", "steps"], value="minutes")
        self._name = LineEdit(label="Save as", value="", tooltip="empty = <image>-<method>-<date>")
        self._device = ComboBox(label="Device", choices=DEVICES, value="auto")
        self._run = PushButton(text="Train")
        self._cancel = PushButton(text="Cancel", visible=False)
        self._status = status_line()
        self._unit.label = ""
        self.extend([self._image, self._start, row(self._amount, self._unit, label="Budget"), row(self._run, self._cancel)])
        full_width(self, self._status)
        self.figure, self.canvas = mpl_canvas(1.7)
        self.canvas.setVisible(False)  # until there is a curve to show
        self.native.layout().addWidget(self.canvas)
        self.advanced = fold(self, "Advanced", [self._annotations, self._method, self._name, self._device])
        self._task: Task | None = None
        self.output: Path | None = None
        self.history: list[Any] = []
        self._last_draw = 0.0
        self._start.value = models.default_model(models.available()) or SCRATCH
        self._method.enabled = self._start.value == SCRATCH
        self._start.changed.connect(lambda value: setattr(self._method, "enabled", value == SCRATCH))
        self._run.changed.connect(self.run)
        self._cancel.changed.connect(self.cancel)
        models.on_models_changed(self, self._start.reset_choices)
        self._annotations.native.setMaximumHeight(72)  # a list, not the whole dock
        follow_layers(viewer, self, [self.advanced])

    def reset_choices(self, *args: Any) -> None:
        super().reset_choices(*args)
        self.advanced.reset_choices(*args)

    # ------------------------------------------------------------------ data
    def collect_pairs(self) -> list[tuple[Any, Any]]:
        """(frame, Instances) for every annotated frame; raises ValueError saying what is missing."""
        layer = self._image.value
        if layer is None:
            raise ValueError("No image layer to train on: open the image whose cells you corrected")
        frames = image_frames(layer)
        chosen = resolve_choices(self._viewer, self._annotations.value) or L.linked_layers(self._viewer.layers, layer.name)
        if not chosen:
            raise ValueError(f"No annotations for {layer.name!r}: segment it (or 'Add cell' and paint cells), "
                             "or select results or Labels layers under Advanced > 'Annotations'")
        chosen.sort(key=lambda x: self._viewer.layers.index(x))
        per_frame = L.instances_from_layers(chosen, len(frames), frames.shape[1:])
        pairs = [(frames[t], inst) for t, inst in enumerate(per_frame) if len(inst)]
        if not pairs:
            raise ValueError(f"The annotations of {layer.name!r} hold no cells: paint at least one cell before training")
        return pairs

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Train in a worker, plotting the loss; the best model is saved as it goes."""
        if self._task is not None:
            return
        from blastoseg.training.sources import PairSource

        try:
            source = PairSource(self.collect_pairs())
        except ValueError as error:
            notify("error", error_message(error))
            return
        by_minutes = self._unit.value == "minutes"
        amount = float(self._amount.value) if by_minutes else max(1, int(self._amount.value))
        start = None if self._start.value == SCRATCH else self._start.value
        method, device, image = self._method.value, self._device.value, self._image.value.name
        method_name = method if start is None else models.method_of(start)
        self.output = unique_model_path(self._name.value or f"{image}-{method_name}-{time.strftime('%Y%m%d-%H%M')}")
        output, first_save = self.output, [True]

        def work():  # noqa: ANN202 - a generator for the worker
            with imports_without_stalls():  # torch, in the worker: the window keeps drawing
                from blastoseg import checkpoint
                from blastoseg.model import new_model
                from blastoseg.training.augmentation import Augmentation
                from blastoseg.training.finetune import plan
                from blastoseg.training.train import Budget, TrainOptions, train

            budget = Budget(minutes=amount) if by_minutes else Budget(steps=amount)
            model = new_model(method) if start is None else checkpoint.fine_tune_start(start, device)
            side = min(min(img.shape) for img, _ in source.pairs)
            # Steps: scored 4 times. Minutes: scored after the first step, then about
            # SCORE_POINTS times over the budget, once the pace of a step is known.
            every = 1 if by_minutes else max(1, min(25, amount // 4))
            if start is None:
                pairs, validation, lr = source, source.pairs[:MAX_VALIDATION_IMAGES], TrainOptions.lr
            else:  # the same fine-tuning as `blastoseg train --init`: replay, held-out views, the parent to beat
                fine = plan(model, source.pairs)
                pairs, validation, lr = fine.source, fine.validation, model.method.finetune_lr
            options = TrainOptions(budget, batch=BATCH, lr=lr, augmentation=Augmentation(crop=max(64, min(CROP_MAX, side // 32 * 32))),
                                   validate_every=every, device=device,
                                   description=f"napari: {'trained' if start is None else 'fine-tuned'} on "
                                               f"{len(source.pairs)} annotated frame(s) of {image}")
            steps = train(model, pairs, options, output, validation=validation)
            while True:
                try:
                    event = next(steps)
                except StopIteration as stop:
                    return stop.value
                if by_minutes and event.step == 2:  # step 1 included the first scoring
                    expected = event.step / max(event.fraction, 1e-9)
                    options.validate_every = max(1, round(expected / SCORE_POINTS))
                yield event

        def on_event(event: Any) -> None:
            self._show(event)
            if event.saved is not None and first_save[0]:
                first_save[0] = False
                models.EVENTS.changed.emit()

        self.history = []
        hold_collections()
        self._task = Task(work, on_event, self._finished, self._failed, self._idle)
        self._set_running(True)
        self._task.start()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._status.value = "cancelling after this step…"

    def _set_running(self, running: bool) -> None:
        self._run.visible, self._cancel.visible = not running, running
        if running:
            self._status.value = "starting…"

    def _idle(self) -> None:
        self._task = None
        release_collections()
        self._set_running(False)
        self._draw()

    def _failed(self, error: BaseException) -> None:
        self._status.value = f"training failed{self._at_step()}"
        notify("error", f"Training failed: {error_message(error)}")

    def _at_step(self) -> str:
        return f" at step {self.history[-1].step}" if self.history else ""

    def _best(self) -> str:
        best = next((e.best for e in reversed(self.history) if e.best is not None), None)
        return "" if best is None else f" · best {SCORE_LABEL} {best:.3f}"

    def _finished(self, result: Any) -> None:
        saved = self.output is not None and self.output.is_file()
        if saved:
            models.EVENTS.changed.emit()
        if result is CANCELLED and not saved:
            self._status.value = f"cancelled{self._at_step()}; no model was written"
            notify("info", "Training cancelled before the first checkpoint was saved; no model was written")
        elif result is CANCELLED:
            self._status.value = f"cancelled{self._at_step()}{self._best()} · saved {self.output.name}{self._short_verdict()}"
            notify("info", f"Training cancelled; kept the best checkpoint so far: {self.output}{self.verdict()}")
        else:
            self._status.value = f"done{self._at_step()}{self._best()} · saved {self.output.name}{self._short_verdict()}"
            notify("info", f"Trained model saved to {self.output}; it is now in the Segment step's model list"
                           f"{self.verdict()}")

    def _compared(self) -> tuple[float, float] | None:
        """(best, parent) scores of a fine-tune on the same frames, or None (from scratch, no validation)."""
        last = next((e for e in reversed(self.history) if e.best is not None), None)
        if last is None or last.parent is None:
            return None
        return last.best, last.parent

    def verdict(self) -> str:
        """How the fine-tuned model compares with the one it started from, on the same frames."""
        compared = self._compared()
        if compared is None:
            return ""
        best, parent = compared
        if best > parent:
            return f". It beats the model it started from: {best:.3f} against {parent:.3f}"
        return (f". It does NOT beat the model it started from ({best:.3f} against {parent:.3f} "
                "on the same frames): keep segmenting with that one")

    def _short_verdict(self) -> str:
        compared = self._compared()
        if compared is None:
            return ""
        return " · better than its parent" if compared[0] > compared[1] else " · NOT better than its parent"

    # ------------------------------------------------------------------ display
    def _show(self, event: Any) -> None:
        self.history.append(event)
        val = "" if event.best is None else f" · best {SCORE_LABEL} {event.best:.3f}"
        self._status.value = f"step {event.step} · loss {event.losses['total']:.4f}{val} · {event.eta / 60:.1f} min left"
        if time.perf_counter() - self._last_draw > 0.5 or event.saved is not None:
            self._draw()

    def _draw(self) -> None:
        self._last_draw = time.perf_counter()
        self.canvas.setVisible(bool(self.history))
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        steps = [e.step for e in self.history]
        ax.plot(steps, [e.losses["total"] for e in self.history], color="tab:blue", lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("loss", color="tab:blue")
        checked = [e for e in self.history if e.validation is not None]
        if checked:
            ax2 = ax.twinx()
            ax2.plot([e.step for e in checked], [e.validation for e in checked], "o-", color="tab:orange", ms=3)
            ax2.set_ylabel(SCORE_LABEL, color="tab:orange")
            ax2.set_ylim(0, 1)
        self.canvas.draw_idle()
