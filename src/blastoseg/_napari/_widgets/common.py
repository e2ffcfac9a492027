"""Small pieces the three widgets share: layer pickers and reading an image layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from blastoseg._napari._widgets.tasks import notify

DEVICES = ["auto", "cuda", "mps", "cpu"]


def layer_choices(viewer: Any, kind: str) -> Callable[[object], list[tuple[str, Any]]]:
    """A magicgui choices callable listing the viewer's layers of `kind` ("image" or "labels")."""

    def choices(_widget: object = None) -> list[tuple[str, Any]]:
        from napari import layers

        wanted = {"image": layers.Image, "labels": layers.Labels}[kind]
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, wanted)]

    return choices


def follow_layers(viewer: Any, container: Any) -> None:
    """Refresh the container's pickers whenever layers come, go or are renamed."""
    events = viewer.layers.events
    for name in ("inserted", "removed", "moved"):
        getattr(events, name).connect(lambda _event=None: container.reset_choices())


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


def mpl_canvas(height: float = 2.4) -> tuple[Any, Any]:
    """A small matplotlib (figure, canvas) for a dock widget."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, height), tight_layout=True)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(int(height * 70))
    return figure, canvas
