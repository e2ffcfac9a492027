"""Shared networks. A method names one in its config (`net: unet | erfnet`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
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


def zero_outputs(net: torch.nn.Module, channels: Sequence[int]) -> torch.nn.Module:
    """Make the given output channels start at exactly 0 (their last layer's weights and
    bias), as EmbedSeg's reference does for offsets and sigma: random initial offsets of
    tens of pixels make the start of training slow and its speed a matter of luck."""
    if isinstance(net, UNet):
        layers = [(net.head, range(net.head.out_channels))]
    elif isinstance(net, BranchedERFNet):
        ends = [decoder[-1] for decoder in net.decoders]
        starts = np.cumsum([0] + [end.out_channels for end in ends])
        layers = [(end, range(start, start + end.out_channels)) for end, start in zip(ends, starts)]
    else:
        raise TypeError(f"no output layer known for {type(net).__name__}")
    with torch.no_grad():
        for layer, span in layers:
            local = [c - span.start for c in channels if c in span]
            # Conv2d weights are (out, in, ...); ConvTranspose2d weights are (in, out, ...).
            if isinstance(layer, torch.nn.ConvTranspose2d):
                layer.weight[:, local] = 0
            else:
                layer.weight[local] = 0
            if layer.bias is not None:
                layer.bias[local] = 0
    return net


__all__ = ["BranchedERFNet", "UNet", "build_net", "zero_outputs"]
