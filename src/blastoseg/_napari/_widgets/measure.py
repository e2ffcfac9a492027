"""The "Measure" step: cell layers -> tables, cleavage times and CSV files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    PushButton,
    Select,
    SpinBox,
    Table,
)

from blastoseg import measure
from blastoseg._napari import layers as L
from blastoseg._napari._widgets import models
from blastoseg._napari._widgets.common import (
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
from blastoseg._napari._widgets.tasks import error_message, notify

if TYPE_CHECKING:
    import napari


class MeasureWidget(Container):
    """Measure the cells linked to an image (or chosen Labels layers); export two CSV files."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._image = ComboBox(label="Image", choices=layer_choices(viewer, "image"))
        self._cells = Select(label="Cells", choices=result_choices(viewer),
                             tooltip="results or Labels layers to measure; none selected = the image's newest result")
        self._interval = FloatSpinBox(label="Frame interval (h)", value=0.0, min=0.0, max=1000.0, step=0.05,
                                      tooltip="0 = report cleavage times in frames only")
        self._stable = SpinBox(label="Stable for (frames)", value=2, min=1, max=100,
                               tooltip="a cleavage counts once the new cell count holds this many frames")
        self._measure = PushButton(text="Measure")
        self._show_table = ComboBox(label="Table", choices=["cells", "frames"], value="cells")
        self._table = Table()
        self._table.native.setMinimumHeight(120)
        self._table.native.setMaximumHeight(220)
        self._summary = status_line()
        self._export = PushButton(text="Export CSV…", enabled=False)
        self._show_table.label = ""
        self.extend([self._image, self._cells, self._interval, row(self._measure, self._show_table, self._export)])
        full_width(self, self._summary, self._table)
        self.figure, self.canvas = mpl_canvas(1.6)
        self.canvas.setVisible(False)
        self.native.layout().addWidget(self.canvas)
        self.advanced = fold(self, "Advanced", [self._stable])
        self.result: measure.Measurements | None = None
        self._image_name = ""
        self._pixel = (1.0, 1.0)
        self._measure.changed.connect(lambda *_: self.run())
        self._show_table.changed.connect(self._fill_table)
        self._export.changed.connect(self._ask_export)
        self._cells.native.setMaximumHeight(72)  # a list, not the whole dock
        self._image.changed.connect(self._image_changed)
        follow_layers(viewer, self, [self.advanced])

    def reset_choices(self, *args: Any) -> None:
        super().reset_choices(*args)
        self.advanced.reset_choices(*args)

    def _image_changed(self, *_: Any) -> None:
        """Measurements belong to the image they were made on: clear them for another one."""
        if self.result is not None and self._image.value is not None and self._image.value.name != self._image_name:
            self.clear()

    def clear(self) -> None:
        self.result = None
        self._image_name = ""
        self._export.enabled = False
        self._table.value = []
        self._summary.value = ""
        self.canvas.setVisible(False)

    # ------------------------------------------------------------------ inputs
    def _inputs(self, layers: list[Any] | None = None) -> tuple[list[Any], int, tuple[int, int], str]:
        """(layers bottom to top, number of frames, frame shape, image name); ValueError says what is wrong."""
        image, chosen = self._image.value, list(layers) if layers else resolve_choices(self._viewer, self._cells.value)
        if image is None and not chosen:
            raise ValueError("Nothing to measure: choose an image that was segmented, or select a result under 'Cells'")
        if not chosen:
            chosen = L.linked_layers(self._viewer.layers, image.name)
            if not chosen:
                raise ValueError(f"{image.name!r} has no cells: segment it first, or select a result or Labels layers under 'Cells'")
        chosen.sort(key=lambda x: self._viewer.layers.index(x))
        if image is not None:
            frames = image_frames(image)
            return chosen, len(frames), frames.shape[1:], image.name
        first = chosen[0]
        data, info = first.data, L.tag(first)
        n_frames = int(info.get("n_frames", data.shape[0] if data.ndim == 4 else 1))
        return chosen, n_frames, tuple(data.shape[-2:]), info.get("source", first.name)

    def run(self, layers: list[Any] | None = None) -> None:
        """Measure now (fast: no worker needed) and show the table; `layers` (Labels layers)
        instead of what the pickers say, if given."""
        try:
            chosen, n_frames, shape, name = self._inputs(layers)
            per_frame, ids = L.cells_from_layers(chosen, n_frames, shape)
            if not any(len(f) for f in per_frame):
                raise ValueError("Nothing to measure: the chosen cells hold no painted pixels")
            pixel = tuple(float(s) for s in chosen[-1].scale[-2:])
            tags = [L.tag(x) for x in chosen if L.tag(x).get("method")]
            provenance = {"image": name, **({k: tags[0].get(k, "") for k in ("method", "model_sha256")} if tags else {})}
            self.result = measure.measure_frames(per_frame, pixel, self._interval.value or None, provenance,
                                                 self._stable.value, cell_ids=ids)
        except ValueError as error:
            self.clear()
            notify("error", error_message(error))
            return
        self._image_name = name
        self._pixel = pixel
        self._export.enabled = True
        self._fill_table()
        self._plot()

    # ------------------------------------------------------------------ display
    def _fill_table(self) -> None:
        if self.result is None:
            return
        table = self.result.cells if self._show_table.value == "cells" else self.result.frames
        shown = table.drop(columns=[c for c in measure.PROVENANCE_COLUMNS if c in table]).round(3)
        self._table.value = shown.astype(object).where(shown.notna(), "")
        frames = self.result.frames
        last = frames.iloc[-1]
        n = int(last["n_cells"])
        text = f"{n} cell{'s' * (n != 1)}" + (" in the last frame" if len(frames) > 1 else "")
        if last["symmetric"] is not None:
            text += f", {'symmetric' if last['symmetric'] else 'asymmetric'} (size difference {last['diameter_difference']:.0%})"
        if len(frames) > 1:
            unit = "h" if self.result.frame_interval_h else "frame"
            times = self.result.cleavage_hours() if self.result.frame_interval_h else self.result.cleavage
            text += " · " + ", ".join(f"{k} = {'–' if v is None else format(v, 'g')}" for k, v in times.items()) + f" ({unit})"
        sy, sx = self._pixel
        self._summary.value = text + f" · pixel {sy:g} x {sx:g} µm (layer scale)"

    def _plot(self) -> None:
        frames = self.result.frames if self.result is not None else None
        show = frames is not None and len(frames) > 1
        self.canvas.setVisible(show)
        if not show:
            return
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        hours = self.result.frame_interval_h
        x = frames["frame"] * hours if hours else frames["frame"]
        ax.step(x, frames["n_cells"], where="post", color="tab:blue")
        for name, t in self.result.cleavage.items():
            if t is not None:
                ax.axvline(t * hours if hours else t, color="0.7", lw=0.8)
                ax.text(t * hours if hours else t, frames["n_cells"].max(), name, fontsize=7, va="top")
        ax.set_xlabel("time (h)" if hours else "frame")
        ax.set_ylabel("cells")
        ax.set_yticks(np.unique(frames["n_cells"]))
        self.canvas.draw_idle()

    # ------------------------------------------------------------------ export
    def _ask_export(self) -> None:
        path = models.ask_save_path("Export measurements (two CSV files)", f"{self._image_name}_measurements.csv", "CSV files (*.csv)")
        if path:
            self.export(path)

    def export(self, path: str | Path) -> tuple[Path, Path] | None:
        """Write <stem>_cells.csv and <stem>_frames.csv; existing files are kept (new names are used)."""
        if self.result is None:
            notify("error", "Nothing to export yet: press Measure first")
            return None
        try:
            written = measure.write_csv(self.result, path, on_exists="rename")
        except (ValueError, OSError) as error:
            notify("error", f"Could not write the CSV files: {error_message(error)}")
            return None
        renamed = written != measure.csv_paths(path)
        notify("info", f"Wrote {written[0].name} and {written[1].name} in {written[0].parent}"
               + (" (existing files with the asked name were kept)" if renamed else ""))
        return written
