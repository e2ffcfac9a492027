"""Shared networks. A method names one in its config (`net: unet | erfnet`)."""

from __future__ import annotations

from typing import Any

import torch

from blastoseg.nets.erfnet import BranchedERFNet
from blastoseg.nets.unet import UNet


def build_net(name: str, in_channels: int, out_channels: list[int], **options: Any) -> torch.nn.Module:
    """A network whose forward returns the head outputs concatenated on the channel axis."""
    if name == "unet":
        return UNet(in_channels, sum(out_channels), **options)
    if name == "erfnet":
        return BranchedERFNet(in_channels, out_channels, **options)
    raise ValueError(f"unknown network {name!r}; choose 'unet' or 'erfnet'")


__all__ = ["BranchedERFNet", "UNet", "build_net"]
