"""The device a model runs on."""

from __future__ import annotations

import re

import torch

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an unavailable or unknown request is a clear error."""
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower()
    else:
        raise ValueError(f"a device is one of {DEVICES}; got {device!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    cuda = re.fullmatch(r"cuda(?::(\d+))?", name)
    if cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but no CUDA GPU is available; use --device cpu or auto")
        index = int(cuda.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} was asked for but only {torch.cuda.device_count()} CUDA GPU(s) exist (cuda:0 ..)")
        return torch.device(name)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' was asked for but Apple MPS is not available; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device(name)
    hint = " (an NVIDIA GPU is 'cuda')" if name in ("gpu", "nvidia") else ""
    raise ValueError(f"unknown device {device!r}; use {DEVICES}{hint}")
