"""Small pieces the widgets share: layer and run pickers, folding groups, reading an image layer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from blastoseg._napari import layers as L
from blastoseg._napari._widgets import tasks
from blastoseg._napari._widgets.tasks import notify

DEVICES = ["auto", "cuda", "mps", "cpu"]


def layer_choices(viewer: Any, kind: str) -> Callable[[object], list[tuple[str, Any]]]:
    """A magicgui choices callable listing the viewer's layers of `kind` ("image" or "labels")."""

    def choices(_widget: object = None) -> list[tuple[str, Any]]:
        from napari import layers

        wanted = {"image": layers.Image, "labels": layers.Labels}[kind]
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, wanted)]

    return choices


@dataclass(frozen=True)
class RunChoice:
    """A run in a picker: stands for the run's cell layers."""

    run: str
    name: str


def result_choices(viewer: Any) -> Callable[[object], list[tuple[str, Any]]]:
    """A magicgui choices callable: the result runs (one entry each, not one per cell layer),
    then the Labels layers that belong to no run (a user's own annotations)."""

    def choices(_widget: object = None) -> list[tuple[str, Any]]:
        from napari import layers

        found = [(f"{run.name} ({run.n_cells} cell{'s' * (run.n_cells != 1)})", RunChoice(run.run, run.name))
                 for run in reversed(L.runs(viewer.layers))]
        own = [(layer.name, layer) for layer in reversed(viewer.layers)
               if isinstance(layer, layers.Labels) and not L.tag(layer).get("run")]
        return found + own

    return choices


def resolve_choices(viewer: Any, chosen: Iterable[Any]) -> list[Any]:
    """The Labels layers that picker values stand for (a run: its cell layers)."""
    out: list[Any] = []
    found = {run.run: run for run in L.runs(viewer.layers)}
    for value in chosen:
        if isinstance(value, RunChoice):
            out.extend(found[value.run].cells if value.run in found else [])
        elif value in viewer.layers:
            out.append(value)
    return out


PICKER_QUIET_MS = 400  # pickers refresh once layers have stopped coming and going this long


def follow_layers(viewer: Any, container: Any, also: Sequence[Any] = ()) -> None:
    """Refresh the pickers of `container` (and of the containers in `also`) when layers come,
    go, move or are renamed: once per burst of changes, when the burst is over (at once
    when workers run inline). A run's dozen layers then cost one refresh, not a dozen."""
    timer: list[Any] = []

    def refresh() -> None:
        try:
            for widget in (container, *also):
                widget.reset_choices()
        except RuntimeError:  # the widget's Qt object was deleted with its dock
            pass

    def schedule(_event: object = None) -> None:
        if tasks.SYNC:
            refresh()
            return
        if not timer:
            from qtpy.QtCore import QTimer

            quiet = QTimer(container.native)
            quiet.setSingleShot(True)
            quiet.timeout.connect(refresh)
            timer.append(quiet)
        try:
            timer[0].start(PICKER_QUIET_MS)
        except RuntimeError:  # deleted with its dock
            pass

    events = viewer.layers.events
    for name in ("inserted", "removed", "moved"):
        getattr(events, name).connect(schedule)
    events.inserted.connect(lambda event: event.value.events.name.connect(schedule))


def fold(container: Any, title: str, widgets: Sequence[Any], expanded: bool = False) -> Any:
    """A foldable group ("Advanced") at the end of `container` holding `widgets`; returns
    the group's own magicgui Container (whose reset_choices the owner calls)."""
    from magicgui.widgets import Container
    from superqt import QCollapsible

    inner = Container(widgets=list(widgets), labels=True)
    inner.native.layout().setContentsMargins(0, 0, 0, 0)
    box = QCollapsible(title)
    box.setDuration(0)
    box.addWidget(inner.native)
    box.layout().setContentsMargins(0, 0, 0, 0)
    if expanded:
        box.expand(animate=False)
    else:
        box.collapse(animate=False)
    container.native.layout().addWidget(box)
    inner.box = box
    return inner


def full_width(container: Any, *widgets: Any) -> None:
    """Put widgets (a status line, a progress bar) across the whole container, below what
    it holds so far, instead of in its value column."""
    layout = container.native.layout()
    for widget in widgets:
        layout.addWidget(widget.native)


def status_line() -> Any:
    """A word-wrapped status line, hidden while it has nothing to say."""
    from magicgui.widgets import Label
    from qtpy.QtWidgets import QSizePolicy

    class StatusLine(Label):
        @property
        def value(self) -> str:
            return Label.value.fget(self)

        @value.setter
        def value(self, text: str) -> None:
            Label.value.fset(self, text)
            self.native.setVisible(bool(text))  # no empty gap in the dock

    label = StatusLine(value="")
    native = label.native
    native.setWordWrap(True)
    native.setContentsMargins(4, 0, 4, 0)
    native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.MinimumExpanding)
    native.setMinimumHeight(2 * native.fontMetrics().lineSpacing() + 4)  # two lines without relayout
    native.setVisible(False)
    return label


def row(*widgets: Any, label: str = "") -> Any:
    """Widgets side by side, as one row of a labelled container."""
    from magicgui.widgets import Container

    line = Container(widgets=list(widgets), layout="horizontal", labels=False, label=label)
    line.margins = (0, 0, 0, 0)
    return line


def layer_data(layer: Any) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def image_frames(layer: Any) -> np.ndarray:
    """The image layer as float32 frames (T, H, W); raises ValueError with what to do.

    A 3D greyscale layer is always a time-lapse (T, H, W); RGB becomes grey with a warning.
    """
    data = layer_data(layer)
    if data.ndim > (4 if layer.rgb else 3):
        raise ValueError(
            f"image {layer.name!r} has {data.ndim} dimensions {data.shape}; blastoseg segments 2D frames "
            "or a (T, H, W) time-lapse. Pick one channel or z-plane first (e.g. Image > Split stack, "
            "or viewer.layers[...].data[:, 0] in the console)"
        )
    from blastoseg.inference.preprocess import as_frames

    return as_frames(data, rgb=bool(layer.rgb), notify=lambda message: notify("warning", f"{layer.name}: {message}"))


def plane_geometry(layer: Any) -> tuple[list[float], list[float]]:
    """The layer's scale and translate without the colour axis, for result layers over it."""
    ndim = layer.ndim
    return list(layer.scale[-ndim:]), list(layer.translate[-ndim:])


def mpl_canvas(height: float = 2.0) -> tuple[Any, Any]:
    """A small matplotlib (figure, canvas) for a dock widget."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, height), tight_layout=True)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(int(height * 70))
    return figure, canvas
