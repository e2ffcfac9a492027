"""Adding layers to napari without freezing its window.

napari spends ~0.05 s of GUI time on every new layer and then redraws the canvas (with
the window's composition, ~0.07 s in software OpenGL); adding a dozen at once froze the
window for seconds. `Feeder` runs such steps one per event-loop turn, and `light` layers
leave out napari's drawing aids (polygon and brush outlines, about half the cost of a
Labels layer) until they are selected for editing (`full`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from blastoseg._napari._widgets import tasks

# Adding a layer makes napari redraw the canvas, and the redraw (with the window's
# composition, ~70 ms in software OpenGL) ran right after the ~50 ms of adding it: one
# block the window could not answer in. The redraw is held back REPAINT_DELAY_MS, and the
# next layer waits STEP_GAP_MS, so the event loop runs between the pieces.
REPAINT_DELAY_MS = 20
STEP_GAP_MS = 100


def qtimer_once(delay_ms: int, callback: Callable[[], None]) -> None:
    from qtpy.QtCore import QTimer

    QTimer.singleShot(delay_ms, callback)


class Feeder:
    """Runs steps one per event-loop turn (all at once with `tasks.SYNC`), so that the
    window keeps drawing and answering between them."""

    def __init__(self, steps: Sequence[Callable[[], Any]], on_step: Callable[[int, int], None] | None = None,
                 on_done: Callable[[], None] | None = None) -> None:
        self.steps, self.on_step, self.on_done = list(steps), on_step, on_done
        self.done = 0
        self.cancelled = False
        self.timings: list[float] = []  # seconds each step took on the GUI thread

    def start(self) -> None:
        if tasks.SYNC:
            while self._step():
                pass
        else:
            qtimer_once(0, self._turn)

    def cancel(self) -> None:
        self.cancelled = True

    def _turn(self) -> None:
        if self._step():
            qtimer_once(STEP_GAP_MS, self._turn)

    def _step(self) -> bool:
        if self.cancelled or self.done >= len(self.steps):
            if self.on_done is not None:
                callback, self.on_done = self.on_done, None
                callback()
            return False
        start = time.perf_counter()
        try:
            self.steps[self.done]()
        except Exception as error:  # noqa: BLE001 - e.g. a layer the user removed meanwhile: stop, tidy up
            tasks.notify("error", f"Adding the result's layers stopped: {tasks.error_message(error)}")
            self.cancelled = True
            return self._step()
        self.timings.append(time.perf_counter() - start)
        self.done += 1
        if self.on_step is not None:
            self.on_step(self.done, len(self.steps))
        return True


def redraw(widget: Any) -> None:
    try:
        widget.setUpdatesEnabled(True)
        widget.update()
    except RuntimeError:  # the window was closed meanwhile
        pass


EDITING_OVERLAYS = ("polygon", "brush_stroke")  # napari's drawing aids of a Labels layer


def light(layer: Any) -> Any:
    """A Labels layer that napari adds without building its drawing aids (the polygon and
    brush outlines, about half of its GUI cost): napari makes an overlay's visual only once
    it is visible, so they are hidden until the layer is selected (`full`)."""
    overlays = getattr(layer, "_overlays", None)
    try:
        for key in EDITING_OVERLAYS:
            if key in overlays:
                overlays[key].visible = False
    except (TypeError, AttributeError):  # another napari: add the layer as it comes
        pass
    return layer


def full(layer: Any) -> None:
    """Give a layer made `light` its drawing aids back (it is selected, to be edited)."""
    overlays = getattr(layer, "_overlays", None)
    try:
        for key in EDITING_OVERLAYS:
            if key in overlays and not overlays[key].visible:
                overlays[key].visible = True
    except (TypeError, AttributeError):
        pass


class Inserter:
    """Puts layers into a viewer the cheap way: not made the active layer, the canvas
    redrawn a moment after rather than at once, and, between `batching(True)` and
    `batching(False)` (which may be turns of the event loop apart), inside napari's batched
    update with the layer list and layer controls not repainted."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self._in_batch = False

    def batching(self, begin: bool) -> None:
        """napari's batched layer update (`LayerList.batched_update`), begun in one event-loop
        turn and ended in a later one; meanwhile the layer list and layer controls are not
        repainted (each repaint of the window cost as much as adding a layer), the canvas is."""
        events = self.viewer.layers.events
        if begin and not self._in_batch:
            self._in_batch = True
            events.begin_batch()
            self._repaint_lists(False)
        elif not begin and self._in_batch:
            self._in_batch = False
            events.end_batch()
            self._repaint_lists(True)

    def _repaint_lists(self, enabled: bool) -> None:
        qt_viewer = getattr(getattr(self.viewer, "window", None), "_qt_viewer", None)
        for name in ("layers", "controls"):
            widget = getattr(qt_viewer, name, None)
            if widget is not None and hasattr(widget, "setUpdatesEnabled"):
                widget.setUpdatesEnabled(enabled)

    def insert(self, layer: Any, index: int) -> Any:
        """Insert without making the layer the active one (which builds its controls). A
        visible layer's canvas redraw comes a moment later, not at once (REPAINT_DELAY_MS);
        a hidden layer changes nothing on the canvas, and the redraw napari asks for is
        skipped (every vispy layer is told the view direction again when one is added)."""
        layers = self.viewer.layers
        activate = getattr(layers, "_activate_on_insert", None)
        canvas = None if tasks.SYNC else self._canvas_widget()
        scene = None if tasks.SYNC or layer.visible else self._scene_canvas()
        if activate is not None:
            layers._activate_on_insert = False
        if scene is not None:
            scene.update = _no_update
        elif canvas is not None:
            canvas.setUpdatesEnabled(False)
        try:
            layers.insert(index, layer)
        finally:
            if activate is not None:
                layers._activate_on_insert = activate
            if scene is not None:
                del scene.update  # the class's own again
            elif canvas is not None:
                qtimer_once(REPAINT_DELAY_MS, lambda: redraw(canvas))
        return layer

    def _scene_canvas(self) -> Any:
        qt_viewer = getattr(getattr(self.viewer, "window", None), "_qt_viewer", None)
        scene = getattr(getattr(qt_viewer, "canvas", None), "_scene_canvas", None)
        return scene if scene is not None and "update" not in vars(scene) else None

    def _canvas_widget(self) -> Any:
        qt_viewer = getattr(getattr(self.viewer, "window", None), "_qt_viewer", None)
        canvas = getattr(qt_viewer, "canvas", None)
        native = getattr(canvas, "native", None) or getattr(getattr(canvas, "_scene_canvas", None), "native", None)
        return native if hasattr(native, "setUpdatesEnabled") else None


def _no_update(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for the vispy canvas's `update` while a hidden layer goes in."""
