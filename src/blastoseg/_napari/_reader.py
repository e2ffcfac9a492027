"""npe2 reader for `*_amodal.tif` results (see docs/data-formats.md), and making it the one napari uses.

Two readers claim `embryo_amodal.tif`: blastoseg's (`*_amodal.tif`) and napari's builtin
one (`*.tif`). npe2 lists every reader whose pattern matches, in no order, and napari
asks the user to choose unless a preference (`settings.plugins.extension2reader`) names
one; among preferences, napari ranks a pattern by `score_specificity`, which scores
`*_amodal.tif` and `*.tif` alike (one segment with a star), so the earlier entry
wins. `prefer_blastoseg` therefore puts blastoseg's patterns first, unless the user
chose a reader for them. It runs when the plugin is activated (the manifest's
`on_activate`: any blastoseg command, e.g. opening its widget or sample data) and when
the widget opens; the preference is saved with napari's settings.

`viewer.open(path)` in code reads with napari's builtin reader unless `plugin=None` is
given (napari's default is `plugin="napari"`); in the viewer current when the plugin is
activated (once per process: its widget, sample data, reader or writer first used) and
in every viewer its widget opens in, such a layer is replaced by blastoseg's
(`replace_builtin_reads`). Before that, napari runs no blastoseg code at all,
so a fresh viewer's first `viewer.open(path)` gives napari's image of packed planes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from blastoseg._napari import layers as L
from blastoseg.io import read_amodal

SUFFIXES = ("_amodal.tif", "_amodal.tiff")
PATTERNS = tuple(f"*{s}" for s in SUFFIXES)
PLUGIN = "blastoseg"


def get_reader(path: str | list[str]) -> Callable[[str], list[L.LayerData]] | None:
    """napari's reader hook: a reader for `*_amodal.tif` files, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_layers if str(path).lower().endswith(SUFFIXES) else None


def _side_file(path: Path, kind: str) -> np.ndarray | None:
    """`<stem>_zona.tif` or `<stem>_fragments.tif` beside the result, if there."""
    side = path.with_name(path.name[: -len(_suffix(path))] + f"_{kind}.tif")
    if not side.is_file():
        return None
    import tifffile

    return np.asarray(tifffile.imread(side))


def _suffix(path: Path) -> str:
    return next(s for s in SUFFIXES if path.name.lower().endswith(s))


def read_layers(path: str | list[str]) -> list[L.LayerData]:
    """A result as a segmentation run gives it (an overview, a layer per cell, and the zona
    and fragments when their files are beside it), named "<image> · <file name>"; scores,
    depth and provenance go to the layers' metadata, so saving them back loses nothing."""
    path = Path(path[0] if isinstance(path, list) else path)
    frames, provenance = read_amodal(path)
    stem = path.name[: -len(_suffix(path))]
    source = str(provenance.get("image", stem))
    extras = {}
    for kind in ("zona", "fragments"):
        data = _side_file(path, kind)
        if data is not None and data.shape[-2:] == frames[0].shape and (data.ndim == 2) == (len(frames) == 1):
            extras[kind] = data if data.ndim == 3 else data[None]
    keep = {k: v for k, v in provenance.items() if k in ("method", "model", "model_sha256")}
    return L.result_layers(frames, source, {**keep, "file": str(path)}, L.new_run_id(), f"{source}{L.SEP}{path.name}",
                           **extras)


def prefer_blastoseg() -> None:
    """Make blastoseg napari's reader for `*_amodal.tif`, unless the user chose another."""
    try:
        from napari.settings import get_settings

        plugins = get_settings().plugins
        current = dict(plugins.extension2reader)
    except Exception:  # noqa: BLE001 - settings unavailable (no napari, broken file): opening asks, as before
        return
    mine = {p: PLUGIN for p in PATTERNS if p not in current}
    if not mine and list(current)[: len(PATTERNS)] == list(PATTERNS):
        return
    ours = {p: current.get(p, PLUGIN) for p in PATTERNS}
    plugins.extension2reader = {**ours, **{k: v for k, v in current.items() if k not in ours}}


def activate(_context: Any = None) -> None:
    """npe2's `on_activate` hook: from then on the current viewer's `viewer.open(path)`
    gives blastoseg's layers too (napari runs no plugin code before a first activation)."""
    prefer_blastoseg()
    try:
        from napari import current_viewer

        viewer = current_viewer()
    except Exception:  # noqa: BLE001 - no Qt application or no viewer: nothing to watch
        viewer = None
    if viewer is not None:
        replace_builtin_reads(viewer)


_watched: weakref.WeakSet = weakref.WeakSet()


def replace_builtin_reads(viewer: Any) -> None:
    """From now on, in this viewer: an `*_amodal.tif` that napari's builtin reader opened
    (as an image of packed planes) is replaced by blastoseg's layers."""
    if viewer in _watched:
        return
    _watched.add(viewer)

    def inserted(event: Any) -> None:
        layer = event.value
        source = getattr(layer, "source", None)
        path = getattr(source, "path", None)
        if not path or getattr(source, "reader_plugin", None) == PLUGIN or L.tag(layer):
            return
        if not str(path).lower().endswith(SUFFIXES):
            return
        from qtpy.QtCore import QTimer

        def swap() -> None:
            if layer not in viewer.layers:
                return
            from napari.layers import Labels

            index = viewer.layers.index(layer)
            viewer.layers.remove(layer)
            for offset, (data, kwargs, _) in enumerate(read_layers(str(path))):
                viewer.layers.insert(index + offset, Labels(data, **kwargs))

        QTimer.singleShot(0, swap)

    viewer.layers.events.inserted.connect(inserted)
