"""Methods for inference tests: no network of their own to build or train."""

from __future__ import annotations

import torch

from blastoseg.d4 import FieldLayout
from blastoseg.methods.base import Config, DenseMethod, Detector


class _NoTraining:
    def default_config(self) -> dict:
        return {}

    def build(self, config: Config) -> torch.nn.Module:
        return torch.nn.Identity()

    def targets(self, instances, config: Config) -> dict:
        return {}

    def collate(self, targets: list) -> dict:
        return {}

    def training_loss(self, net, images, targets, config: Config) -> dict:
        return {"total": net(images).sum() * 0}


class FakeDense(_NoTraining, DenseMethod):
    """Its maps are the image itself; subclasses say how they become instances."""

    name, amodal, layout = "fake-dense", False, FieldLayout()

    def loss(self, raw: torch.Tensor, targets, config: Config) -> dict:
        return {"total": raw.sum() * 0}

    def activate(self, raw: torch.Tensor, config: Config) -> torch.Tensor:
        return raw


class FakeDetector(_NoTraining, Detector):
    name, amodal = "fake-detector", False
