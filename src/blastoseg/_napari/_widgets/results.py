"""The result runs in one viewer: added without blocking, kept tidy, overviews kept in step.

`Results.of(viewer)` is shared by the widgets of a viewer. It adds a run's layers one
per turn of the event loop (napari spends ~0.1 s of GUI time on every new layer, mostly
building its visuals, so adding a dozen at once froze the window for seconds), removes
or hides earlier runs of the same image, redraws an overview when one of its cells is
painted, added or deleted, and lets the user pick a cell by clicking the overview.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from psygnal import Signal

from blastoseg._napari import layers as L
from blastoseg._napari._widgets import tasks

REFRESH_DELAY_MS = 150  # overviews are redrawn this long after the last edit
# Adding a layer makes napari redraw the canvas, and the redraw (with the window's
# composition, ~70 ms in software OpenGL) ran right after the ~50 ms of adding it: one
# block the window could not answer in. The redraw is held back REPAINT_DELAY_MS, and the
# next layer waits STEP_GAP_MS, so the event loop runs between the pieces.
REPAINT_DELAY_MS = 20
STEP_GAP_MS = 100


def _qtimer_once(delay_ms: int, callback: Callable[[], None]) -> None:
    from qtpy.QtCore import QTimer

    QTimer.singleShot(delay_ms, callback)


def _info(layer: Any) -> dict:
    """The layer's own blastoseg metadata dict (not a copy), created if missing."""
    return layer.metadata.setdefault(L.KEY, {})


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
            _qtimer_once(0, self._turn)

    def cancel(self) -> None:
        self.cancelled = True

    def _turn(self) -> None:
        if self._step():
            _qtimer_once(STEP_GAP_MS, self._turn)

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


class _ResultEvents:
    run_added = Signal(str)  # run id
    runs_changed = Signal()
    cell_picked = Signal(str, int, int)  # run id, cell number, frame (-1: none)


class Results:
    """Result runs of one viewer (see the module docstring)."""

    _instances: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, viewer: Any) -> Results:
        if viewer not in cls._instances:
            cls._instances[viewer] = cls(viewer)
        return cls._instances[viewer]

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.events = _ResultEvents()
        self._attached: weakref.WeakSet = weakref.WeakSet()
        self._pending: dict[str, set[int] | None] = {}  # run -> frames to redraw (None = all)
        self._flush_due = False
        self._removing: set[str] = set()
        self._in_batch = False
        self._shown: Any = None  # the cell layer shown because it was picked
        self.picked: tuple[str, int] | None = None  # (run, cell)
        self.review_below = 0.5  # confidence under which a cell is to be reviewed
        viewer.layers.events.inserted.connect(self._inserted)
        viewer.layers.events.removed.connect(self._removed)
        viewer.layers.selection.events.active.connect(self._active_changed)
        for layer in list(viewer.layers):
            self._attach(layer)

    # ------------------------------------------------------------------ queries
    def runs(self, image_name: str | None = None) -> list[L.Run]:
        return L.runs(self.viewer.layers, image_name)

    def run(self, run: str) -> L.Run | None:
        return next((r for r in self.runs() if r.run == run), None)

    def cell_layers(self, run: str, cell: int) -> list[Any]:
        found = self.run(run)
        return [x for x in (found.cells if found else []) if int(L.tag(x).get("cell", -1)) == cell]

    # ------------------------------------------------------------------ adding a run
    def add_run(self, items: Sequence[L.LayerData], remove: Sequence[L.Run] = (), hide: Sequence[L.Run] = (),
                on_step: Callable[[int, int], None] | None = None,
                on_done: Callable[[list[Any]], None] | None = None, start: bool = True) -> Feeder:
        """Add one run's layers (`result_layers` order, bottom to top) in one block at the
        top of the layer list, one layer per event-loop turn: the overview first, so the
        result shows at once, then its cells below it in number order; then remove the
        runs in `remove` and hide those in `hide`. Cancelling the feeder stops adding and
        leaves the earlier runs as they were (`on_done` gets what was added)."""
        from napari.layers import Labels

        added: list[Any] = []
        steps: list[Callable[[], Any]] = []
        for old in remove:
            self._removing.add(old.run)

        extras = [it for it in items if L.item_tag(it).get("role") in ("zona", "fragments")]
        overview = [it for it in items if L.item_tag(it).get("role") == "overview"]
        cells = sorted((it for it in items if L.item_tag(it).get("role") == "cell"), key=lambda it: L.item_tag(it)["cell"])
        others = [it for it in items if L.item_tag(it).get("role") not in ("zona", "fragments", "overview", "cell")]

        def append(item: L.LayerData) -> None:
            added.append(self._insert(_light(Labels(item[0], **item[1])), len(self.viewer.layers)))

        def below_previous(item: L.LayerData) -> None:
            # under the layer added last: the overview, then cell 1, cell 2, ...
            anchor = added[-1] if added else None
            index = self.viewer.layers.index(anchor) if anchor in self.viewer.layers else len(self.viewer.layers)
            added.append(self._insert(_light(Labels(item[0], **item[1])), index))

        steps.extend(lambda it=it: append(it) for it in (*extras, *others, *overview))
        if cells:
            # The cells are hidden: napari's canvas need not rebuild its scene for each of
            # them (which redrew the window every time), only once they are all in.
            steps.append(lambda: self._batching(True))
            steps.extend(lambda it=it: below_previous(it) for it in cells)
            steps.append(lambda: self._batching(False))
        if hide:
            steps.append(lambda: [setattr(layer, "visible", False) for old in hide for layer in old.layers
                                  if layer in self.viewer.layers])
        if remove:  # batched too: napari otherwise collects garbage and syncs the GPU after each
            steps.append(lambda: self._batching(True))
            for old in remove:
                steps.extend(self._remover(layer) for layer in old.layers)
            steps.append(lambda: self._batching(False))

        def finish() -> None:
            self._batching(False)  # a cancelled feeder stops inside the batch
            for old in remove:
                self._removing.discard(old.run)
            present = [x for x in added if x in self.viewer.layers]
            view = next((x for x in present if L.tag(x).get("role") == "overview"), None)
            if view is not None:
                self.viewer.layers.selection.active = view
            self.events.runs_changed.emit()
            run = next((L.tag(x).get("run") for x in present), None)
            if run:
                self.events.run_added.emit(run)
            if on_done is not None:
                on_done(present)

        feeder = Feeder(steps, on_step, finish)
        if start:
            feeder.start()
        return feeder

    def _batching(self, begin: bool) -> None:
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

    def _insert(self, layer: Any, index: int) -> Any:
        """Insert without making the layer the active one (which builds its controls), and
        with the canvas redrawn a moment later, not at once (see REPAINT_DELAY_MS)."""
        layers = self.viewer.layers
        activate = getattr(layers, "_activate_on_insert", None)
        canvas = None if tasks.SYNC else self._canvas_widget()
        if activate is not None:
            layers._activate_on_insert = False
        if canvas is not None:
            canvas.setUpdatesEnabled(False)
        try:
            layers.insert(index, layer)
        finally:
            if activate is not None:
                layers._activate_on_insert = activate
            if canvas is not None:
                _qtimer_once(REPAINT_DELAY_MS, lambda: _redraw(canvas))
        return layer

    def _canvas_widget(self) -> Any:
        qt_viewer = getattr(getattr(self.viewer, "window", None), "_qt_viewer", None)
        canvas = getattr(qt_viewer, "canvas", None)
        native = getattr(canvas, "native", None) or getattr(getattr(canvas, "_scene_canvas", None), "native", None)
        return native if hasattr(native, "setUpdatesEnabled") else None

    def _remover(self, layer: Any) -> Callable[[], None]:
        def remove() -> None:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)

        return remove

    def remove_run(self, run: L.Run) -> Feeder:
        """Remove every layer of `run`."""
        self._removing.add(run.run)

        def done() -> None:
            self._removing.discard(run.run)
            self.events.runs_changed.emit()

        def done_batched() -> None:
            self._batching(False)
            done()

        steps = [lambda: self._batching(True), *(self._remover(layer) for layer in run.layers)]
        feeder = Feeder(steps, on_done=done_batched)
        feeder.start()
        return feeder

    def review(self, run: str, below: float | None = None) -> list[L.Flag]:
        """The cells of `run` to check (`layers.review`), from its layers as they are now."""
        found = self.run(run)
        if found is None or not found.cells:
            return []
        info = L.tag(found.cells[0])
        n_frames = int(info.get("n_frames", 1))
        shape = tuple(np.shape(found.cells[0].data)[-2:])
        frames, numbers = L.cells_from_layers(found.cells, n_frames, shape)
        zona = found.role("zona")
        inside = None
        if zona is not None:
            data = np.asarray(zona.data).reshape(-1, *shape)
            inside = [float(np.count_nonzero(plane == 2)) or None for plane in data]
        return L.review(frames, numbers, self.review_below if below is None else below, inside)

    # ------------------------------------------------------------------ editing cells
    def add_cell_layer(self, item: L.LayerData) -> Any:
        """A cell layer added by hand, placed after its run's last cell; the run counts as edited."""
        from napari.layers import Labels

        info = L.item_tag(item)
        found = self.run(info["run"])
        index = len(self.viewer.layers)
        if found is not None:
            present = [x for x in found.layers if x in self.viewer.layers]
            cells = [x for x in present if L.tag(x).get("role") == "cell"]
            anchor = cells[0] if cells else (found.overview or (present[-1] if present else None))
            if anchor is not None:
                index = self.viewer.layers.index(anchor)
        layer = self._insert(_light(Labels(item[0], **item[1])), index)
        self._mark_edited(info["run"])
        self._schedule(info["run"], self._frames_of(layer))
        return layer

    def delete_cell(self, run: str, cell: int) -> bool:
        """Remove cell `cell` of `run` (all its layers); False if there was none."""
        doomed = self.cell_layers(run, cell)
        for layer in doomed:
            self.viewer.layers.remove(layer)
        if self.picked == (run, cell):
            self.picked = None
        return bool(doomed)

    def _mark_edited(self, run: str) -> None:
        found = self.run(run)
        if found is not None:
            for layer in found.layers:
                if L.tag(layer).get("role") == "overview":
                    _info(layer)["edited"] = True

    @staticmethod
    def edited(run: L.Run) -> bool:
        return any(L.tag(x).get("edited") for x in run.layers)

    # ------------------------------------------------------------------ picking cells
    def pick(self, run: str, cell: int, frame: int = -1, centre: bool = False) -> Any | None:
        """Show cell `cell` of `run` (its layer, filled) and remember it as the picked cell;
        with `centre`, move the view to it (and to `frame` in a time-lapse)."""
        layers = self.cell_layers(run, cell)
        if not layers:
            return None
        layer = layers[-1]
        if self._shown is not None and self._shown is not layer and self._shown in self.viewer.layers:
            self._shown.visible = False
        layer.visible = True
        self._shown = layer
        self.picked = (run, cell)
        if centre:
            self.centre_on(layer, frame)
        self.events.cell_picked.emit(run, cell, frame)
        return layer

    def centre_on(self, layer: Any, frame: int = -1) -> None:
        data = np.asarray(layer.data)
        if data.ndim == 3:
            first = int(L.tag(layer).get("first_frame", 0))
            k = frame - first if 0 <= frame - first < len(data) else int(np.argmax(data.reshape(len(data), -1).any(1)))
            plane, prefix = data[k], [k]
        else:
            plane, prefix = data, []
        ys, xs = np.nonzero(plane)
        if ys.size == 0:
            return
        world = layer.data_to_world([*prefix, ys.mean(), xs.mean()])
        if prefix:
            self.viewer.dims.set_point(0, world[0])
        self.viewer.camera.center = tuple(world[-2:])

    def edit(self, run: str, cell: int) -> Any | None:
        """Make the cell's layer the active one, in paint mode with its label."""
        layer = self.pick(run, cell)
        if layer is not None:
            self.viewer.layers.selection.active = layer
            _full(layer)
            layer.selected_label = cell
            layer.mode = "paint"
        return layer

    def cell_at(self, run: str, world: Sequence[float]) -> int | None:
        """The front-most cell of `run` at the world position, or None."""
        found = self.run(run)
        if found is None:
            return None
        hits = []
        for layer in found.cells:
            data = np.asarray(layer.data)
            index = np.round(layer.world_to_data(world)[-data.ndim:]).astype(int)
            if np.any(index < 0) or np.any(index >= data.shape):
                continue
            if data[tuple(index)]:
                depth = L.tag(layer).get("depth")
                if isinstance(depth, list):
                    depth = depth[index[0]] if data.ndim == 3 else None
                hits.append((1e6 if depth is None else depth, int(L.tag(layer)["cell"])))
        return min(hits)[1] if hits else None

    def _on_overview_click(self, layer: Any, event: Any) -> Any:
        """Click (without dragging) a cell on the overview to pick it; double-click edits it."""
        if layer.mode != "pan_zoom":
            return
        start = np.asarray(event.position)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = moved or np.abs(np.asarray(event.position) - start).max() > 2 * float(np.min(layer.scale))
            yield
        if moved:
            return
        run = L.tag(layer).get("run")
        cell = self.cell_at(run, start)
        if cell is not None:
            frame = round(layer.world_to_data(start)[0]) if layer.ndim == 3 else -1
            self.pick(run, cell, frame)

    def _on_overview_double_click(self, layer: Any, event: Any) -> None:
        run = L.tag(layer).get("run")
        cell = self.cell_at(run, event.position)
        if cell is not None:
            self.edit(run, cell)

    def _active_changed(self, event: Any) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and L.tag(layer).get("role") == "cell":  # the others are not painted on
            _full(layer)

    # ------------------------------------------------------------------ keeping overviews in step
    def _inserted(self, event: Any) -> None:
        self._attach(event.value)

    def _attach(self, layer: Any) -> None:
        if layer in self._attached:
            return
        role = L.tag(layer).get("role")
        if L.tag(layer).get("contour") and hasattr(layer, "contour") and not layer.contour:
            layer.contour = int(L.tag(layer)["contour"])
            self._attached.add(layer)
        if role == "cell":
            self._attached.add(layer)
            ref = weakref.ref(layer)
            layer.events.paint.connect(lambda event: self._painted(ref(), event))
            layer.events.data.connect(lambda _event: self._painted(ref(), None))
        elif role == "overview":
            self._attached.add(layer)
            layer.mouse_drag_callbacks.append(self._on_overview_click)
            layer.mouse_double_click_callbacks.append(self._on_overview_double_click)

    def _removed(self, event: Any) -> None:
        layer = event.value
        info = L.tag(layer)
        if layer is self._shown:
            self._shown = None
        if info.get("role") == "cell" and info.get("run") not in self._removing:
            self._mark_edited(info["run"])
            self._schedule(info["run"], self._frames_of(layer))
        if info.get("run") not in self._removing:
            self.events.runs_changed.emit()

    @staticmethod
    def _frames_of(layer: Any) -> set[int]:
        data = np.asarray(layer.data)
        first = int(L.tag(layer).get("first_frame", 0))
        return set(range(first, first + len(data))) if data.ndim == 3 else {0}

    def _painted(self, layer: Any, event: Any) -> None:
        if layer is None:
            return
        run = L.tag(layer).get("run")
        frames: set[int] | None = None
        if event is not None and np.ndim(layer.data) == 3:
            first = int(L.tag(layer).get("first_frame", 0))
            frames = set()
            for atom in getattr(event, "value", None) or []:
                touched = _atom_frames(atom)
                if touched is None:
                    frames = self._frames_of(layer)
                    break
                frames.update(t + first for t in touched)
        elif np.ndim(layer.data) == 2:
            frames = {0}
        self._mark_edited(run)
        # napari emits `paint` before `data_setitem` writes the pixels: redraw after this turn
        self._schedule(run, frames if frames else self._frames_of(layer), defer=True)

    def _schedule(self, run: str, frames: set[int] | None, defer: bool = False) -> None:
        if run in self._pending and self._pending[run] is None:
            pass
        elif frames is None:
            self._pending[run] = None
        else:
            self._pending.setdefault(run, set()).update(frames)
        if tasks.SYNC and not defer:
            self.flush()
        elif not self._flush_due:
            self._flush_due = True
            _qtimer_once(0 if tasks.SYNC else REFRESH_DELAY_MS, self.flush)

    def flush(self) -> None:
        """Redraw the overviews of the edited frames now."""
        self._flush_due = False
        pending, self._pending = self._pending, {}
        for run, frames in pending.items():
            found = self.run(run)
            if found is None or found.overview is None:
                continue
            redraw_overview(found.overview, found.cells, frames)


def _redraw(widget: Any) -> None:
    try:
        widget.setUpdatesEnabled(True)
        widget.update()
    except RuntimeError:  # the window was closed meanwhile
        pass


EDITING_OVERLAYS = ("polygon", "brush_stroke")  # napari's drawing aids of a Labels layer


def _light(layer: Any) -> Any:
    """A Labels layer that napari adds without building its drawing aids (the polygon and
    brush outlines, about half of its GUI cost): napari makes an overlay's visual only once
    it is visible, so they are hidden until the layer is selected (`_full`)."""
    overlays = getattr(layer, "_overlays", None)
    try:
        for key in EDITING_OVERLAYS:
            if key in overlays:
                overlays[key].visible = False
    except (TypeError, AttributeError):  # another napari: add the layer as it comes
        pass
    return layer


def _full(layer: Any) -> None:
    """Give a layer made `_light` its drawing aids back (it is selected, to be edited)."""
    overlays = getattr(layer, "_overlays", None)
    try:
        for key in EDITING_OVERLAYS:
            if key in overlays and not overlays[key].visible:
                overlays[key].visible = True
    except (TypeError, AttributeError):
        pass


def _atom_frames(atom: Any) -> set[int] | None:
    """The first-axis indices a napari undo atom changed: a masked atom has a box
    (`slice_key`), an index atom (indices, old, new) the indices; None if unknown."""
    key = getattr(atom, "slice_key", None)
    if key is not None and isinstance(key[0], slice):
        return set(range(key[0].start or 0, key[0].stop))
    if isinstance(atom, tuple) and atom and isinstance(atom[0], tuple) and atom[0]:
        return {int(t) for t in np.unique(np.asarray(atom[0][0]))}
    return None


def redraw_overview(overview: Any, cells: Sequence[Any], frames: set[int] | None = None) -> None:
    """Redraw the outlines of `cells` in `overview` on `frames` (None = all)."""
    data = overview.data
    timelapse = data.ndim == 3
    n_frames = len(data) if timelapse else 1
    frames = set(range(n_frames)) if frames is None else {t for t in frames if 0 <= t < n_frames}
    largest = max((int(L.tag(x).get("cell", 0)) for x in cells), default=0)
    if largest > np.iinfo(data.dtype).max:
        overview.data = data = data.astype(np.uint16)
    width = L.outline_width(data.shape)
    for t in sorted(frames):
        parts = []
        for layer in cells:
            info, cell_data = L.tag(layer), np.asarray(layer.data)
            first = int(info.get("first_frame", 0))
            if cell_data.ndim == 3:
                if not first <= t < first + len(cell_data):
                    continue
                mask, depth = cell_data[t - first] != 0, info.get("depth")
                depth = depth[t - first] if isinstance(depth, list) else depth
            else:
                mask, depth = cell_data != 0, info.get("depth")
            parts.append((int(info.get("cell", 1)), 1e6 if depth is None else float(depth), mask))
        plane = np.zeros(data.shape[-2:], data.dtype)
        L.draw_overview(plane, parts, width)
        if timelapse:
            data[t] = plane
        else:
            data[...] = plane
    overview.refresh()
