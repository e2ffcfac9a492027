"""Checkpoints: one `NAME.safetensors` per model, weights plus JSON metadata.

Nothing is ever unpickled: safetensors holds raw tensors and a string header only, so a
malicious file cannot run code. Writes go to a temporary file that is renamed into
place, so a crash never leaves a half-written model. Shipped models live in the
repository's `models/` folder; a user's trained ones in the per-user data folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from blastoseg import __version__
from blastoseg.catalogue import SUFFIX, list_models
from blastoseg.device import resolve_device
from blastoseg.methods import get_method
from blastoseg.model import Model
from blastoseg.settings import PipelineSettings, split_config

FORMAT = "blastoseg-checkpoint-1"


class CheckpointError(ValueError):
    """A file that is not a usable blastoseg checkpoint."""


def save(model: Model, path: str | os.PathLike, **extra_metadata: Any) -> Path:
    """Write weights + metadata atomically; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"checkpoints are {SUFFIX} files; got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**model.metadata, **extra_metadata}
    meta.update(format=FORMAT, method=model.method.name, config=model.config, pipeline=model.pipeline.as_dict(),
                blastoseg_version=__version__)
    meta.setdefault("normalisation", {"percentiles": list(model.pipeline.normalize_percentiles)})
    meta.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    header = {key: json.dumps(value) for key, value in meta.items()}
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        save_file(state, tmp, metadata=header)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would otherwise survive the rename
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without loading its weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except Exception as error:  # safetensors raises several types for foreign files
        raise CheckpointError(
            f"{path.name} is not a safetensors file ({error.__class__.__name__}); blastoseg loads only "
            "its own .safetensors checkpoints and never unpickles .pt/.pth files"
        ) from None
    try:
        meta = {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is a safetensors file but not a blastoseg checkpoint (no '{FORMAT}' metadata)")
    return meta


def load(name_or_path: str | os.PathLike, device: str | torch.device = "auto") -> Model:
    """A model by registry name ('embedseg', 'user:mine') or by file path, ready for inference."""
    from safetensors.torch import load_file

    registry = list_models()
    path = registry[str(name_or_path)] if str(name_or_path) in registry else Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(f"no model named or found at {name_or_path!r}; known models: {', '.join(registry) or 'none'}")
    meta = read_metadata(path)
    method = get_method(meta["method"])
    own, moved = split_config(meta.get("config", {}))  # older files keep pipeline settings in the config
    config = {**method.default_config(), **own}
    pipeline = PipelineSettings.from_dict({**method.pipeline_defaults, **moved, **meta.get("pipeline", {})})
    net = method.build(config)
    try:
        net.load_state_dict(load_file(str(path)))
    except RuntimeError as error:
        raise CheckpointError(f"{path.name}: weights do not fit the {method.name} network ({str(error)[:200]})") from None
    net.to(resolve_device(device)).eval()
    return Model(method, config, net, meta, path, pipeline)


# Records of how a model was made and measured; a model fine-tuned from it must not claim them.
OWN_RECORDS = ("date", "scores", "training", "tuning", "parent")


def fine_tune_start(name_or_path: str | os.PathLike, device: str | torch.device = "auto") -> Model:
    """`load`, for fine-tuning into a new model: the parent's own records (OWN_RECORDS) are
    dropped and replaced by `parent` = its name and sha256. Its config, thresholds
    included, is kept."""
    model = load(name_or_path, device)
    model.metadata = {k: v for k, v in model.metadata.items() if k not in OWN_RECORDS}
    model.metadata["parent"] = {"name": model.name, "sha256": model.sha256}
    return model


