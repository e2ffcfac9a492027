"""The method protocol: the pipeline, widgets, training and benchmarks never branch on a name.

A method turns a network's raw output into `Instances` and `Instances` into training
targets. Raw maps are tensors (B, C, H, W); `layout` tells the D4 machinery which
channels are vectors, so test-time augmentation needs nothing method-specific.

Optional hooks, for methods that do not fit "network -> raw maps" (detectors); the
engine uses each one when a method has it (`hasattr`), never by name:

- `pretrain(model, batches, device) -> Iterator[dict[str, float]]`: run by `train.train`
  before the main loop, one step per yielded loss dict, on an endless iterator of
  batches (lists of `Instances`), until `config["pretrain_fraction"]` of the budget is
  used; then the generator is closed (so it must leave the model usable when stopped).
- `training_loss(net, images, targets, config) -> dict[str, Tensor]`: used by
  `train.train` instead of `loss(net(images), ...)`; `targets` come from `collate`.
- `tuning_grid: dict[str, tuple]`: post-processing settings worth choosing on held-out
  images, and the values to try (`benchmarks/tuning.py`).
- `tta_tuning_grid: dict[str, tuple]`: for methods whose TTA views are merged as
  instances, the settings worth choosing anew for that consensus; the choice is stored
  as config["tta_settings"], which `predict.Predictor` applies whenever it runs TTA.
- `tta_merge_for(config) -> str`: the TTA merge rule ("fields" or "instances") when it
  depends on the settings; `predict.Predictor` asks it instead of reading `tta_merge`.
- `detect(net, images, config) -> list[Instances]`: used by `predict.Predictor` instead
  of `activate`/`postprocess`; one `Instances` per image of the batch (the D4 views),
  in that image's frame. The predictor turns them back and merges them by consensus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from blastoseg.d4 import FieldLayout
from blastoseg.instances import Instances

Config = Mapping[str, Any]


@runtime_checkable
class Method(Protocol):
    name: str
    amodal: bool  # predicts occluded extents
    tta_merge: Literal["fields", "instances"]
    layout: FieldLayout  # channel semantics of `activate`'s output

    def default_config(self) -> dict[str, Any]:
        """Every tunable of the method, stored in its checkpoints."""
        ...

    def build(self, config: Config) -> torch.nn.Module:
        """The network; its `multiple` attribute says what input sides it needs."""
        ...

    def targets(self, instances: Instances, config: Config) -> dict[str, np.ndarray]:
        """Training targets for one image; arrays of any shape, collated by `collate`."""
        ...

    def collate(self, targets: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        """A batch of targets, as the loss wants them."""
        ...

    def loss(self, raw: torch.Tensor, targets: Mapping[str, Any], config: Config) -> dict[str, torch.Tensor]:
        """Named loss terms for a batch of raw outputs; "total" is minimised."""
        ...

    def activate(self, raw: torch.Tensor, config: Config) -> torch.Tensor:
        """Raw output -> the maps that TTA averages and `postprocess` reads (same layout)."""
        ...

    def postprocess(self, maps: torch.Tensor, config: Config) -> Instances:
        """Activated maps of ONE image (C, H, W) -> instances in that image's coordinates."""
        ...
