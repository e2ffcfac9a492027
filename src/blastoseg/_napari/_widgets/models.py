"""The models the widgets offer: shipped, the user's trained ones, and files opened since napari started."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psygnal import Signal


class _ModelEvents:
    """`changed` fires when a model is trained or opened, so every model list refreshes at once."""

    changed = Signal()


EVENTS = _ModelEvents()


def on_models_changed(widget: Any, callback: Callable[[], Any]) -> None:
    """Call `callback` when the model list changes, until `widget`'s Qt object is destroyed."""
    EVENTS.changed.connect(callback)
    # psygnal only drops callbacks whose Python object dies; a closed dock widget can
    # outlive its Qt object, and calling into a deleted QComboBox raises.
    widget.native.destroyed.connect(lambda *_: EVENTS.changed.disconnect(callback, missing_ok=True))
_opened: dict[str, Path] = {}  # checkpoints opened by file since napari started: label -> path


def available() -> dict[str, Path]:
    """Label -> checkpoint file for every model a widget can use."""
    from blastoseg import catalogue

    found = dict(catalogue.list_models())
    known = {p.resolve() for p in found.values()}
    for label, path in _opened.items():
        if path.is_file() and path.resolve() not in known:
            found[label] = path
    return found


def choices(_widget: object = None) -> list[tuple[str, Path]]:
    return list(available().items())


def is_amodal(path: str | os.PathLike) -> bool:
    """Does the checkpoint's method predict occluded extents? False for unreadable files."""
    from blastoseg import checkpoint
    from blastoseg.methods import get_method

    try:
        meta = checkpoint.read_metadata(path)
        return bool(meta.get("amodal", get_method(meta["method"]).amodal))
    except (ValueError, KeyError, OSError):
        return False


def default_model(models: dict[str, Path]) -> Path | None:
    """The model a new user should get: the best shipped one by docs/benchmarks.md
    (`catalogue.DEFAULT_PREFERENCE`), else the first amodal one, else any."""
    from blastoseg.catalogue import DEFAULT_PREFERENCE

    for name in DEFAULT_PREFERENCE:
        if name in models:
            return models[name]
    for path in models.values():
        if is_amodal(path):
            return path
    return next(iter(models.values()), None)


def open_checkpoint(path: str | os.PathLike) -> Path:
    """Check that `path` is a blastoseg checkpoint and offer it in the model lists.

    Returns the path to select (the listed one if the file is already known). Raises
    CheckpointError / FileNotFoundError with a message for the user.
    """
    from blastoseg import checkpoint

    path = Path(path)
    checkpoint.read_metadata(path)
    for known in available().values():
        if known.resolve() == path.resolve():
            return known
    label = f"file: {path.name}"
    if label in _opened:  # another file of the same name: tell them apart by folder
        label = f"file: {path}"
    _opened[label] = path
    EVENTS.changed.emit()
    return path


def ask_checkpoint_path() -> str | None:
    """A file dialog for a .safetensors checkpoint (tests replace this)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(None, "Open a blastoseg checkpoint", "", "blastoseg checkpoints (*.safetensors)")
    return path or None


def ask_save_path(title: str, default: str, pattern: str) -> str | None:
    """A save dialog (tests replace this)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(None, title, default, pattern)
    return path or None


def method_of(path: str | os.PathLike) -> str:
    """The method name stored in a checkpoint ("model" if unreadable)."""
    from blastoseg import checkpoint

    try:
        return str(checkpoint.read_metadata(path)["method"])
    except (ValueError, KeyError, OSError):
        return "model"
