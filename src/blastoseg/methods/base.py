"""The two kinds of method; the pipeline, widgets, training and benchmarks never branch on a name.

A method turns a network's output into `Instances` and `Instances` into training targets.
It is one of two kinds, and the pipeline dispatches on the kind:

- `DenseMethod`: the network maps an image to raw maps (B, C, H, W); `activate` turns them
  into the maps that test-time augmentation merges and `postprocess` reads. `layout` tells
  the D4 machinery which channels are vectors, so TTA needs nothing method-specific.
  Views are merged as "fields" (maps averaged, post-processed once) or "instances" (each
  view post-processed, the consensus kept; for maps that permute between views).
- `Detector`: the network finds instances itself; `detect` gives one `Instances` per view
  of a batch, and the views are merged by consensus.

Both have the same training side: `targets` and `collate` build a batch's targets and
`training_loss` computes the named loss terms of a batch ("total" is minimised). The
defaults below are the behaviour of a method that needs no more: no pre-training stage,
no schedule over training, nothing to tune.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch

from blastoseg.d4 import FieldLayout
from blastoseg.instances import Instances

if TYPE_CHECKING:
    from blastoseg.model import Model

Config = Mapping[str, Any]


class Method(ABC):
    """What every method has: its network, its training targets and losses."""

    name: ClassVar[str]
    amodal: ClassVar[bool]  # predicts occluded extents
    # Post-processing settings worth choosing on held-out images, and the values to try
    # (`training.tune.tune_thresholds`).
    tuning_grid: ClassVar[dict[str, tuple]] = {}
    # Settings worth choosing anew for the consensus of TTA views; the choice is stored as
    # the pipeline's `tta_settings` (`training.tune.tune_tta`).
    tta_tuning_grid: ClassVar[dict[str, tuple]] = {}
    # Learning rate for fine-tuning a trained model on a user's few frames: a tenth of a
    # usual from-scratch rate, so that the first steps do not undo what it knew.
    finetune_lr: ClassVar[float] = 1e-4
    # Pipeline settings (see `settings.PipelineSettings`) this method's new models start with.
    pipeline_defaults: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def default_config(self) -> dict[str, Any]:
        """Every tunable of the method, stored in its checkpoints."""

    @abstractmethod
    def build(self, config: Config) -> torch.nn.Module:
        """The network; its `multiple` attribute says what input sides it needs."""

    @abstractmethod
    def targets(self, instances: Instances, config: Config) -> dict[str, np.ndarray]:
        """Training targets for one image; arrays of any shape, collated by `collate`."""

    @abstractmethod
    def collate(self, targets: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        """A batch of targets, as the loss wants them."""

    @abstractmethod
    def training_loss(self, net: torch.nn.Module, images: torch.Tensor, targets: Mapping[str, Any], config: Config) -> dict[str, torch.Tensor]:
        """Named loss terms of one batch of images (B, 1, H, W); "total" is minimised."""

    def pretrain(self, model: Model, batches: Iterator[Sequence[Instances]], device: torch.device) -> Iterator[dict[str, float]]:
        """A stage run before the main loop, one step per yielded loss dict, on an endless
        iterator of batches (lists of `Instances`), until `config["pretrain_fraction"]` of
        the budget is used; then it is closed, so it must leave the model usable when
        stopped. None by default."""
        yield from ()

    # Config keys that change the network's shape: changing one on a trained model builds
    # the network anew and carries the weights over (`rebuilt`).
    architecture_keys: ClassVar[tuple[str, ...]] = ()

    def finds_fragments(self, config: Config) -> bool:
        """Whether the network tells fragments (class FRAGMENT) from cells. Methods that
        do not are trained on the cells alone."""
        return False

    def rebuilt(self, net: torch.nn.Module, config: Config) -> torch.nn.Module:
        """A network for a config whose `architecture_keys` changed, carrying `net`'s weights."""
        raise ValueError(f"{self.name} cannot change {', '.join(self.architecture_keys) or 'its network'} of a trained model")

    def on_progress(self, config: Config, fraction: float) -> Config:
        """The config of the next training step at `fraction` of the budget (a schedule
        over training, e.g. FCRNet's power); the config itself by default."""
        return config


class DenseMethod(Method):
    """Network -> raw maps -> `activate` -> (TTA merge) -> `postprocess` -> `Instances`."""

    layout: ClassVar[FieldLayout]  # channel semantics of `activate`'s output
    tta_merge: ClassVar[Literal["fields", "instances"]] = "fields"

    @abstractmethod
    def loss(self, raw: torch.Tensor, targets: Mapping[str, Any], config: Config) -> dict[str, torch.Tensor]:
        """Named loss terms for a batch of raw outputs; "total" is minimised."""

    @abstractmethod
    def activate(self, raw: torch.Tensor, config: Config) -> torch.Tensor:
        """Raw output -> the maps that TTA averages and `postprocess` reads (same layout)."""

    @abstractmethod
    def postprocess(self, maps: torch.Tensor, config: Config) -> Instances:
        """Activated maps of ONE image (C, H, W) -> instances in that image's coordinates."""

    def training_loss(self, net: torch.nn.Module, images: torch.Tensor, targets: Mapping[str, Any], config: Config) -> dict[str, torch.Tensor]:
        return self.loss(net(images), targets, config)

    def tta_merge_for(self, config: Config) -> Literal["fields", "instances"]:
        """How TTA views are merged with these settings; `tta_merge` unless the rule depends on them."""
        return self.tta_merge

    def view_agreement(self, views: torch.Tensor, instances: Instances, config: Config) -> np.ndarray | None:
        """Per instance found in the averaged maps of the (V, C, H, W) `views`, the views'
        agreement in [0, 1], which becomes its score; None keeps postprocess's scores."""
        return None


class Detector(Method):
    """Network -> instances per view -> (TTA consensus) -> `Instances`."""

    @abstractmethod
    def detect(self, net: torch.nn.Module, images: torch.Tensor, config: Config) -> list[Instances]:
        """A batch of views (B, 1, H, W) -> one `Instances` per view, in that view's frame."""
