"""A small 2-D U-Net (the unfolding and fusion sub-networks of the fold repair model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.base import check_shape


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with leaky ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
    )


class SmallUNet(nn.Module):
    """Encoder-decoder with skips: ``widths`` channels per level, average pooling down, bilinear up.

    Input H and W must be multiples of ``2 ** (len(widths) - 1)`` (see :attr:`size_multiple`). The
    output layer is initialised with small weights so a fresh network predicts values near zero.
    """

    def __init__(self, in_channels: int, out_channels: int, widths: tuple[int, ...] = (16, 32, 64),
                 out_std: float = 1e-3) -> None:
        super().__init__()
        if not widths:
            raise ValueError("widths must name at least one level")
        self.in_channels = in_channels
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(conv_block(previous, width))
            previous = width
        self.up = nn.ModuleList(conv_block(widths[i + 1] + widths[i], widths[i])
                                for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        nn.init.normal_(self.head.weight, std=out_std)
        nn.init.zeros_(self.head.bias)
        self.size_multiple = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H, W)."""
        dims = check_shape(x, f"N,{self.in_channels},H,W", "unet input")
        if dims["H"] % self.size_multiple or dims["W"] % self.size_multiple:
            raise ValueError(f"U-Net input must be a multiple of {self.size_multiple}, got {tuple(x.shape)}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)
