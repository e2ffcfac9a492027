"""The result runs in one viewer: added without blocking, kept tidy, overviews kept in step.

`Results.of(viewer)` is shared by the widgets of a viewer. It adds a run's layers one
per turn of the event loop (napari spends ~0.1 s of GUI time on every new layer, mostly
building its visuals, so adding a dozen at once froze the window for seconds), removes
or hides earlier runs of the same image, redraws an overview when one of its cells is
painted, added or deleted, and lets the user pick a cell by clicking the overview.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from psygnal import Signal

from blastoseg._napari import layers as L
from blastoseg._napari._widgets import tasks
from blastoseg._napari._widgets.feeder import Feeder, Inserter, full, light, qtimer_once
from blastoseg._napari._widgets.overviews import (
    atom_frames,
    cell_at,
    centre_on,
    redraw_overview,
)
from blastoseg._napari.cells import Flag
from blastoseg._napari.cells import review as review_cells

REFRESH_DELAY_MS = 150  # overviews are redrawn this long after the last edit


def _info(layer: Any) -> dict:
    """The layer's own blastoseg metadata dict (not a copy), created if missing."""
    return layer.metadata.setdefault(L.KEY, {})


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
        self.inserter = Inserter(viewer)
        self._shown: Any = None  # the cell layer shown because it was picked
        self.picked: tuple[str, int] | None = None  # (run, cell)
        self.review_below = 0.5  # confidence under which a cell is to be reviewed
        self._camera_at_press: tuple[Any, float] | None = None
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
            added.append(self.inserter.insert(light(Labels(item[0], **item[1])), len(self.viewer.layers)))

        def below_previous(item: L.LayerData) -> None:
            # under the layer added last: the overview, then cell 1, cell 2, ...
            anchor = added[-1] if added else None
            index = self.viewer.layers.index(anchor) if anchor in self.viewer.layers else len(self.viewer.layers)
            added.append(self.inserter.insert(light(Labels(item[0], **item[1])), index))

        steps.extend(lambda it=it: append(it) for it in (*extras, *others, *overview))
        if cells:
            # The cells are hidden: napari's canvas need not rebuild its scene for each of
            # them (which redrew the window every time), only once they are all in.
            steps.append(lambda: self.inserter.batching(True))
            steps.extend(lambda it=it: below_previous(it) for it in cells)
            steps.append(lambda: self.inserter.batching(False))
        if hide:
            steps.append(lambda: [setattr(layer, "visible", False) for old in hide for layer in old.layers
                                  if layer in self.viewer.layers])
        if remove:  # batched too: napari otherwise collects garbage and syncs the GPU after each
            steps.append(lambda: self.inserter.batching(True))
            for old in remove:
                steps.extend(self._remover(layer) for layer in old.layers)
            steps.append(lambda: self.inserter.batching(False))

        def finish() -> None:
            self.inserter.batching(False)  # a cancelled feeder stops inside the batch
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
            self.inserter.batching(False)
            done()

        steps = [lambda: self.inserter.batching(True), *(self._remover(layer) for layer in run.layers)]
        feeder = Feeder(steps, on_done=done_batched)
        feeder.start()
        return feeder

    def review(self, run: str, below: float | None = None) -> list[Flag]:
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
        return review_cells(frames, numbers, self.review_below if below is None else below, inside)

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
        layer = self.inserter.insert(light(Labels(item[0], **item[1])), index)
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
            centre_on(self.viewer, layer, frame)
        self.events.cell_picked.emit(run, cell, frame)
        return layer

    def edit(self, run: str, cell: int) -> Any | None:
        """Make the cell's layer the active one, in paint mode with its label."""
        layer = self.pick(run, cell)
        if layer is not None:
            self.viewer.layers.selection.active = layer
            full(layer)
            layer.selected_label = cell
            layer.mode = "paint"
        return layer

    def cell_at(self, run: str, world: Sequence[float]) -> int | None:
        """The front-most cell of run `run` at the world position, or None."""
        found = self.run(run)
        return None if found is None else cell_at(found, world)

    def _on_overview_click(self, layer: Any, event: Any) -> Any:
        """Click (without dragging) a cell on the overview to pick it; double-click edits it."""
        if layer.mode != "pan_zoom":
            return
        start = np.asarray(event.position)
        camera = self.viewer.camera
        self._camera_at_press = (tuple(camera.center), camera.zoom)
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
            if self._camera_at_press is not None:  # napari zoomed in on the double-click: this one is for editing
                self.viewer.camera.center, self.viewer.camera.zoom = self._camera_at_press
            self.edit(run, cell)

    def _active_changed(self, event: Any) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and L.tag(layer).get("role") == "cell":  # the others are not painted on
            full(layer)

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
                touched = atom_frames(atom)
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
            qtimer_once(0 if tasks.SYNC else REFRESH_DELAY_MS, self.flush)

    def flush(self) -> None:
        """Redraw the overviews of the edited frames now."""
        self._flush_due = False
        pending, self._pending = self._pending, {}
        for run, frames in pending.items():
            found = self.run(run)
            if found is None or found.overview is None:
                continue
            redraw_overview(found.overview, found.cells, frames)


