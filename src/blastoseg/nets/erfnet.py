"""Branched ERFNet (Romera et al. 2017) as EmbedSeg and Neven et al. use it.

One shared encoder, one decoder per output group (e.g. offsets+sigma, seediness).
Kept for the paper's setting; the default for speed is `UNet`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _Downsampler(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class _NonBottleneck1D(nn.Module):
    """Factorised 3x1 / 1x3 residual block, the second pair dilated."""

    def __init__(self, ch: int, dilation: int, dropout: float) -> None:
        super().__init__()
        d = dilation
        self.c1 = nn.Conv2d(ch, ch, (3, 1), padding=(1, 0))
        self.c2 = nn.Conv2d(ch, ch, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(ch)
        self.c3 = nn.Conv2d(ch, ch, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.c4 = nn.Conv2d(ch, ch, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(ch)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.c1(x))
        y = F.relu(self.bn1(self.c2(y)))
        y = F.relu(self.c3(y))
        y = self.drop(self.bn2(self.c4(y)))
        return F.relu(x + y)


class _Upsampler(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _decoder(out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        _Upsampler(128, 64), _NonBottleneck1D(64, 1, 0.0), _NonBottleneck1D(64, 1, 0.0),
        _Upsampler(64, 16), _NonBottleneck1D(16, 1, 0.0), _NonBottleneck1D(16, 1, 0.0),
        nn.ConvTranspose2d(16, out_channels, 2, stride=2),
    )


class BranchedERFNet(nn.Module):
    """ERFNet encoder with one decoder per entry of `out_channels`; outputs are concatenated."""

    multiple = 8

    def __init__(self, in_channels: int, out_channels: list[int], dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = [_Downsampler(in_channels, 16), _Downsampler(16, 64)]
        layers += [_NonBottleneck1D(64, 1, dropout / 4) for _ in range(5)]
        layers.append(_Downsampler(64, 128))
        for _ in range(2):
            layers += [_NonBottleneck1D(128, d, dropout) for d in (2, 4, 8, 16)]
        self.encoder = nn.Sequential(*layers)
        self.decoders = nn.ModuleList(_decoder(c) for c in out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        return torch.cat([decoder(features) for decoder in self.decoders], 1)
