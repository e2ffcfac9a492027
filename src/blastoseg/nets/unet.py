"""A compact U-Net: full-resolution output at a fraction of ERFNet's cost.

Channels double per level while the pixel count quarters, so every level costs about
the same; the full-resolution level is kept thin because it dominates the cost.
Skips are added (after a 1x1 projection at the coarse level), not concatenated: on
CPUs a channels_last concatenation costs as much as the convolution that follows.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(cin, cout, 1)
        self.conv = _conv(cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # Project before upsampling: the 1x1 runs on 4x fewer pixels.
        y = F.interpolate(self.project(x), size=skip.shape[-2:], mode="nearest")
        return self.conv(y + skip)


class UNet(nn.Module):
    """U-Net with `depth` downsamplings; input sides must be multiples of 2**depth (tiling pads)."""

    def __init__(self, in_channels: int, out_channels: int, base: int = 16, depth: int = 5, full_res: int = 8) -> None:
        super().__init__()
        self.depth = depth
        widths = [full_res] + [base * 2**i for i in range(depth)]
        self.stem = _conv(in_channels, full_res)
        self.down = nn.ModuleList(
            nn.Sequential(_conv(widths[i], widths[i + 1], stride=2), _conv(widths[i + 1], widths[i + 1]))
            for i in range(depth)
        )
        self.up = nn.ModuleList(_Up(widths[i + 1], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(full_res, out_channels, 1)

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        return self.head(y)


def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every Conv2d+BatchNorm2d pair of an eval-mode network into the convolution, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential) and len(child) >= 2 and isinstance(child[0], nn.Conv2d) and isinstance(child[1], nn.BatchNorm2d):
            fused = fuse_conv_bn_eval(child[0], child[1])
            setattr(module, name, nn.Sequential(fused, *list(child)[2:]))
        else:
            fuse_batchnorm(child)
    return module
