"""A model: a method, its settings and a network with weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blastoseg.catalogue import file_sha256
from blastoseg.methods import get_method
from blastoseg.methods.base import Method
from blastoseg.settings import PipelineSettings, split_config


@dataclass
class Model:
    """A method, its config, the pipeline settings and a network with loaded weights.

    A config that still holds pipeline settings (older checkpoints, `--config` overrides)
    has them moved into `pipeline`, over the ones given.
    """

    method: Method
    config: dict[str, Any]
    net: torch.nn.Module
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)

    def __post_init__(self) -> None:
        self.config, moved = split_config(self.config)
        if moved:
            self.pipeline = PipelineSettings.from_dict({**self.pipeline.as_dict(), **moved})

    def configure(self, overrides: dict[str, Any]) -> None:
        """Apply a flat dict of method and pipeline settings (e.g. `--config`)."""
        method, pipeline = split_config(overrides)
        reshaped = any(k in method and method[k] != self.config.get(k) for k in self.method.architecture_keys)
        self.config.update(method)
        if reshaped:
            self.net = self.method.rebuilt(self.net, self.config)
        if pipeline:
            self.pipeline = PipelineSettings.from_dict({**self.pipeline.as_dict(), **pipeline})

    @property
    def name(self) -> str:
        return self.path.stem if self.path else self.method.name

    @property
    def sha256(self) -> str:
        return file_sha256(self.path) if self.path else ""


def new_model(method_name: str, config: dict[str, Any] | None = None, seed: int = 0) -> Model:
    """A freshly initialised model of a method, its config and pipeline settings the
    method's defaults updated by `config` (a flat dict of either).
    The initial weights depend on `seed` only, so a training run can be repeated."""
    method = get_method(method_name)
    own, pipeline = split_config(config or {})
    full = {**method.default_config(), **own}
    with torch.random.fork_rng(devices=[]):  # leaves the caller's random stream as it was
        torch.manual_seed(seed)
        net = method.build(full)
    return Model(method, full, net, pipeline=PipelineSettings.from_dict({**method.pipeline_defaults, **pipeline}))
