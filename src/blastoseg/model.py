"""A model: a method, its settings and a network with weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blastoseg.catalogue import file_sha256
from blastoseg.methods import get_method
from blastoseg.methods.base import Method


@dataclass
class Model:
    """A method, its config and a network with loaded weights."""

    method: Method
    config: dict[str, Any]
    net: torch.nn.Module
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.path else self.method.name

    @property
    def sha256(self) -> str:
        return file_sha256(self.path) if self.path else ""


def new_model(method_name: str, config: dict[str, Any] | None = None, seed: int = 0) -> Model:
    """A freshly initialised model of a method, its config the defaults updated by `config`.
    The initial weights depend on `seed` only, so a training run can be repeated."""
    method = get_method(method_name)
    full = {**method.default_config(), **(config or {})}
    with torch.random.fork_rng(devices=[]):  # leaves the caller's random stream as it was
        torch.manual_seed(seed)
        net = method.build(full)
    return Model(method, full, net)
