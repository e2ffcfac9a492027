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
from pathlib import Path
from typing import Any

import torch

from blastoseg import __version__
from blastoseg.atomic import atomic_write
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
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"checkpoints are {SUFFIX} files; got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**model.metadata, **extra_metadata}
    meta.update(format=FORMAT, method=model.method.name, config=model.config, pipeline=model.pipeline.as_dict(),
                blastoseg_version=__version__)
    meta.setdefault("normalisation", {"percentiles": list(model.pipeline.normalize_percentiles)})
    meta.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return write_weights(path, model.net, meta)


def write_weights(path: Path, net: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """`net`'s weights with `meta` as JSON metadata, written atomically and readable by
    others; refused when a weight is NaN or infinite."""
    from safetensors.torch import save_file

    header = {key: json.dumps(value) for key, value in meta.items()}
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # a model that can only answer NaN must never replace one that works
        raise CheckpointError(f"not saving {path.name}: weights {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} "
                              "are NaN or infinite")
    umask = os.umask(0)
    os.umask(umask)

    def write(tmp: Path) -> None:
        save_file(state, str(tmp), metadata=header)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors creates files 0600: others could not read the model

    return atomic_write(path, write)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without loading its weights."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
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
    try:
        method = get_method(meta["method"])
        own, moved = split_config(meta.get("config", {}))  # older files keep pipeline settings in the config
        config = {**method.default_config(), **own}
        pipeline = PipelineSettings.from_dict({**method.pipeline_defaults, **moved, **meta.get("pipeline", {})})
        net = method.build(config)
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # hand-edited or damaged metadata
        raise CheckpointError(f"{path.name}: its metadata does not describe a model blastoseg can build "
                              f"({error.__class__.__name__}: {str(error)[:200]})") from None
    try:
        weights = load_file(str(path))
    except Exception as error:  # a truncated file passes the header check and fails here
        raise CheckpointError(f"{path.name}: cannot read its weights ({str(error)[:200]}); the file is damaged") from None
    broken = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"{path.name}: weights {', '.join(broken[:3])} are NaN or infinite; the model was "
                              "damaged in training and would find nothing. Train it again (e.g. with a lower --lr)")
    try:
        net.load_state_dict(weights)
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


