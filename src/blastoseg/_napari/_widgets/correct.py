"""The "Correct" step: review a run's doubtful cells, add, draw and delete cells."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, PushButton, Select

from blastoseg._napari import layers as L
from blastoseg._napari._widgets.common import (
    fold,
    follow_layers,
    full_width,
    row,
    status_line,
)
from blastoseg._napari._widgets.results import Results
from blastoseg._napari._widgets.tasks import notify
from blastoseg._napari.cells import Flag, outline_width
from blastoseg.instances import Instances

if TYPE_CHECKING:
    import napari

DRAW = "draw"  # role of the Shapes layer "Shape → cell" makes for drawing


class CorrectWidget(Container):
    """Work on one run ("Result"): its cells to review, "Add cell" (paint one), "Shape →
    cell" (draw an ellipse or polygon that becomes a cell) and "Delete cell" (the cell
    picked on the overview or the selected cell layer)."""

    def __init__(self, viewer: napari.viewer.Viewer, image: Callable[[], Any] | None = None) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.results = Results.of(viewer)
        self._image_of = image or self._active_image
        self._result = ComboBox(label="Result", choices=self._run_choices, nullable=True)
        self._remove = PushButton(text="Remove", tooltip="remove every layer of this run")
        self._review = Select(label="Review", choices=self._review_choices, tooltip="cells to check: click one to go to it")
        self._add_cell = PushButton(text="Add cell", tooltip="a new, empty cell layer in paint mode")
        self._shape = PushButton(text="Shape → cell", tooltip="draw an ellipse or polygon, press again: it becomes a cell")
        self._delete = PushButton(text="Delete cell", tooltip="the cell picked on the overview (click it), or the selected cell layer")
        self._status = status_line()
        self._review_below = FloatSpinBox(label="Review below", value=0.5, min=0.0, max=1.0, step=0.05,
                                          tooltip="list cells whose confidence is under this")
        self.extend([row(self._result, self._remove, label="Result"), self._review,
                     row(self._add_cell, self._shape, self._delete)])
        full_width(self, self._status)
        self.advanced = fold(self, "Advanced", [self._review_below])
        self._result.label = ""
        self._flags: list[Flag] = []
        self._review.native.setMaximumHeight(76)  # a short list, not the whole dock
        self._result.changed.connect(self.refresh_review)
        self._remove.changed.connect(self.remove_run)
        self._review.changed.connect(self._go_to)
        self._review_below.changed.connect(self._below_changed)
        self._add_cell.changed.connect(self.add_cell)
        self._shape.changed.connect(self.shape_to_cell)
        self._delete.changed.connect(self.delete_cell)
        self.results.events.run_added.connect(self._run_added)
        self.results.events.runs_changed.connect(self._runs_changed)
        self.results.events.cell_picked.connect(self._picked)
        follow_layers(viewer, self, [self.advanced])
        self._runs_changed()

    def reset_choices(self, *args: Any) -> None:
        super().reset_choices(*args)
        self.advanced.reset_choices(*args)

    # ------------------------------------------------------------------ the run worked on
    def _run_choices(self, _widget: object = None) -> list[tuple[str, str]]:
        return [(f"{r.name} ({r.n_cells} cell{'s' * (r.n_cells != 1)})", r.run) for r in reversed(self.results.runs())]

    @property
    def run(self) -> L.Run | None:
        return self.results.run(self._result.value) if self._result.value else None

    def _active_image(self) -> Any:
        from napari.layers import Image

        active = self._viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        return next((x for x in reversed(self._viewer.layers) if isinstance(x, Image)), None)

    def _run_added(self, run: str) -> None:
        self._result.reset_choices()
        self._result.value = run
        self.refresh_review()

    def _runs_changed(self) -> None:
        current = self._result.value
        self._result.reset_choices()
        values = [v for _, v in self._run_choices()]
        self._result.value = current if current in values else (values[0] if values else None)
        self.refresh_review()

    def remove_run(self) -> None:
        run = self.run
        if run is None:
            notify("error", "No result to remove")
            return
        self.results.remove_run(run)

    # ------------------------------------------------------------------ review
    def _below_changed(self, value: float) -> None:
        self.results.review_below = value
        self.refresh_review()

    def refresh_review(self, *_: Any) -> None:
        run = self.run
        try:
            self._flags = self.results.review(run.run) if run else []
        except ValueError:  # layers edited into shapes that no longer fit: nothing to list
            self._flags = []
        self._review.reset_choices()
        if run is None:
            self._status.value = ""
        elif self._flags:
            self._status.value = f"{len(self._flags)} cell{'s' * (len(self._flags) != 1)} to review: click one to go to it"
        else:
            self._status.value = "no cells to review; click a cell on the overview to pick it, double-click to paint it"

    def _review_choices(self, _widget: object = None) -> list[tuple[str, int]]:
        """The listed cells (a choices callable, so that refreshing the pickers keeps them)."""
        run = self.run
        timelapse = run is not None and int(L.tag(run.layers[0]).get("n_frames", 1)) > 1
        flags = getattr(self, "_flags", [])
        return [(f"{f'frame {f.frame} · ' if timelapse else ''}cell {f.cell} · {f.reason}", k) for k, f in enumerate(flags)]

    def _go_to(self, value: list[int]) -> None:
        if not value or self.run is None:
            return
        flag = self._flags[value[-1]]
        self.results.pick(self.run.run, flag.cell, flag.frame, centre=True)

    def _picked(self, run: str, cell: int, frame: int) -> None:
        layers = self.results.cell_layers(run, cell)
        if not layers:
            return
        info = L.tag(layers[-1])
        confidence = info.get("confidence")
        if isinstance(confidence, list):
            first = int(info.get("first_frame", 0))
            confidence = confidence[frame - first] if 0 <= frame - first < len(confidence) else None
        text = f"cell {cell} picked" + ("" if confidence is None else f" (confidence {confidence:.2f})")
        self._status.value = text + ": double-click it to paint it, or Delete cell"

    # ------------------------------------------------------------------ editing
    def _target_run(self, image: Any) -> L.Run | None:
        """The run to add to: the chosen one if it is `image`'s, else `image`'s newest."""
        run = self.run
        if run is not None and run.source == image.name:
            return run
        found = self.results.runs(image.name)
        return found[-1] if found else None

    def _with_run(self, then: Callable[[L.Run], None]) -> None:
        """Call `then` with the run to edit, making an empty run for the image if it has none."""
        run = self.run
        if run is not None:
            then(run)
            return
        image = self._image_of()
        if image is None:
            notify("error", "No image layer: open the image the cells belong to")
            return
        run = self._target_run(image)
        if run is not None:
            then(run)
            return
        from blastoseg._napari._widgets.common import image_frames, plane_geometry

        frames = image_frames(image)
        scale, translate = plane_geometry(image)
        name = L.run_name(image.name, L.next_run_number(self._viewer.layers, image.name))
        empty = [Instances.empty(frames.shape[1:])] * len(frames)
        items = L.result_layers(empty, image.name, {"method": "drawn by hand"}, L.new_run_id(), name, scale, translate)

        def added(layers: list[Any]) -> None:
            run = self.results.run(L.tag(layers[0])["run"]) if layers else None
            if run is not None:
                then(run)

        self.results.add_run(items, on_done=added)

    @staticmethod
    def _geometry(run: L.Run) -> tuple[tuple[int, ...], int, list[float], list[float]]:
        """(shape, frames, scale, translate) of a run, read from its overview."""
        view = run.overview or run.layers[0]
        return tuple(np.shape(view.data)), int(L.tag(view).get("n_frames", 1)), list(view.scale), list(view.translate)

    def add_cell(self) -> None:
        """A new empty cell layer in the run, in paint mode with the next cell number:
        paint the cell's whole extent, the part hidden behind its neighbours included."""

        def add(run: L.Run) -> None:
            shape, n_frames, scale, translate = self._geometry(run)
            cell = max((int(L.tag(x).get("cell", 0)) for x in run.cells), default=0) + 1
            item = L.empty_cell_layer(run.source, run.run, run.name, shape, cell, n_frames, scale, translate)
            layer = self.results.add_cell_layer(item)
            self.results.edit(run.run, cell)
            layer.brush_size = max(5, int(min(shape[-2:]) / 40))
            self._status.value = f"paint cell {cell}'s whole extent, also where other cells hide it"

        self._with_run(add)

    def shape_to_cell(self) -> None:
        """Turn drawn shapes into cells; with none drawn yet, make a Shapes layer to draw in."""
        from napari.layers import Shapes

        active = self._viewer.layers.selection.active
        drawn = active if isinstance(active, Shapes) and len(active.data) else None
        if drawn is None:
            drawn = next((x for x in reversed(self._viewer.layers)
                          if isinstance(x, Shapes) and L.tag(x).get("role") == DRAW and len(x.data)), None)
        if drawn is not None:
            self._with_run(lambda run: self._convert(drawn, run))
            return

        def make(run: L.Run) -> None:
            shape, _, scale, translate = self._geometry(run)
            existing = next((x for x in self._viewer.layers if L.tag(x).get("role") == DRAW and L.tag(x).get("run") == run.run), None)
            layer = existing or self._viewer.add_shapes(
                ndim=len(shape), name=f"{run.name}{L.SEP}draw a cell", scale=scale, translate=translate,
                edge_color="yellow", face_color=[1, 1, 0, 0.15], edge_width=max(1.0, outline_width(shape) * float(scale[-1])),
                metadata={L.KEY: {"source": run.source, "run": run.run, "role": DRAW}})
            self._viewer.layers.selection.active = layer
            layer.mode = "add_ellipse"
            self._status.value = "draw an ellipse (or pick the polygon tool), then press Shape → cell"

        self._with_run(make)

    def _convert(self, shapes: Any, run: L.Run) -> None:
        from napari.layers import Shapes

        shape, n_frames, scale, translate = self._geometry(run)
        view = run.overview or run.layers[0]
        chosen = sorted(shapes.selected_data) or list(range(len(shapes.data)))
        # Vertices in the overview's pixel coordinates, whatever the Shapes layer's own scale.
        vertices = [np.array([view.world_to_data(shapes.data_to_world(v)) for v in shapes.data[i]]) for i in chosen]
        types = [shapes.shape_type[i] for i in chosen]
        masks = Shapes(vertices, shape_type=types, ndim=len(shape)).to_masks(mask_shape=shape)
        cell = max((int(L.tag(x).get("cell", 0)) for x in run.cells), default=0)
        made = []
        for mask in masks:
            if not mask.any():
                continue
            cell += 1
            if n_frames > 1:
                frames = np.flatnonzero(mask.reshape(len(mask), -1).any(1))
                first, last = int(frames[0]), int(frames[-1])
                data = (mask[first : last + 1] * cell).astype(L.label_dtype(cell))
            else:
                first, data = 0, (mask * cell).astype(L.label_dtype(cell))
            item = L.empty_cell_layer(run.source, run.run, run.name, shape, cell, n_frames, scale, translate,
                                      data=data, first_frame=first)
            made.append(self.results.add_cell_layer(item))
        if not made:
            notify("error", "The shapes cover no pixel of the image: draw them over the embryo")
            return
        if L.tag(shapes).get("role") == DRAW:
            self._viewer.layers.remove(shapes)
        else:
            shapes.selected_data = set(chosen)
            shapes.remove_selected()
        overview = self.results.run(run.run).overview
        if overview is not None:
            self._viewer.layers.selection.active = overview
        numbers = [L.tag(x)["cell"] for x in made]
        self._status.value = f"added cell{'s' * (len(made) > 1)} {', '.join(map(str, numbers))}: double-click to paint, Delete cell to remove"

    def delete_cell(self) -> None:
        """Remove the picked cell (clicked on the overview or listed for review), or the selected cell layer."""
        active = self._viewer.layers.selection.active
        info = L.tag(active) if active is not None else {}
        if info.get("role") == "cell":
            run, cell = info["run"], int(info["cell"])
        elif self.results.picked is not None:
            run, cell = self.results.picked
        else:
            notify("error", "No cell picked: click a cell on the overview (or in the Review list) first")
            return
        if self.results.delete_cell(run, cell):
            self._status.value = f"deleted cell {cell}"
            view = self.results.run(run)
            if view is not None and view.overview is not None:
                self._viewer.layers.selection.active = view.overview
            self.refresh_review()
