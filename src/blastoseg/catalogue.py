"""Where models are found: the shipped ones, inside the package, and a user's own.

Importing it does not import torch, so `blastoseg info` and napari's pickers list models
at once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from blastoseg.atomic import is_temporary

SUFFIX = ".safetensors"
# One default model for every door: Python's `segment`, the command line and napari.
DEFAULT_MODEL = "vqshape"


def shipped_models_dir() -> Path:
    """The shipped models: `blastoseg/models/` in an installed wheel, the repository's
    `models/` in a source checkout (the wheel is built from that folder)."""
    installed = Path(__file__).resolve().parent / "models"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[2] / "models"


def user_models_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("blastoseg", appauthor=False)) / "models"


def _entries(folder: Path) -> list[Path]:
    """The `*.safetensors` names in `folder`, damaged ones and folders so named included (so
    that `blastoseg info` can name them), hidden files and interrupted writes left out."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{SUFFIX}") if not p.name.startswith(".") and not is_temporary(p))


def list_models() -> dict[str, Path]:
    """Model name -> file: shipped models by name, user models by name or 'user:NAME' on a clash."""
    found: dict[str, Path] = {}
    for path in _entries(shipped_models_dir()):
        found[path.stem] = path
    for path in _entries(user_models_dir()):
        found[path.stem if path.stem not in found else f"user:{path.stem}"] = path
    return found


# Best first, by the measured amodal scores in docs/benchmarks.md; DEFAULT_MODEL leads.
DEFAULT_PREFERENCE = (DEFAULT_MODEL, "layered", "embedseg")


def default_model_name() -> str:
    """DEFAULT_MODEL, or the best model present when it is not (see DEFAULT_PREFERENCE)."""
    available = list_models()
    for name in DEFAULT_PREFERENCE:
        if name in available:
            return name
    if available:
        return next(iter(available))
    raise FileNotFoundError(
        f"no models found in {shipped_models_dir()} or {user_models_dir()}; train one with `blastoseg train`"
    )


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
