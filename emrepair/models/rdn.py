"""The siamese residual dense network (RDN) that encodes each input section (weights shared)."""

from __future__ import annotations

import torch
from torch import nn

from emrepair.models.base import check_shape


class ResidualDenseBlock(nn.Module):
    """Densely connected 3x3 convs (growth ``growth`` each), a 1x1 local fusion and a residual."""

    def __init__(self, channels: int, growth: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels + i * growth, growth, 3, padding=1), nn.ReLU(inplace=True))
            for i in range(layers)
        )
        self.fuse = nn.Conv2d(channels + layers * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w)."""
        feats = [x]
        for conv in self.convs:
            feats.append(conv(torch.cat(feats, dim=1)))
        return x + self.fuse(torch.cat(feats, dim=1))


class SiameseRDN(nn.Module):
    """Shallow features at full resolution, strided convs down to 1/``downsample``, then an RDN.

    RDN (Zhang et al.): shallow feature extraction, ``blocks`` residual dense blocks, dense feature
    fusion of all block outputs (1x1 then 3x3) and a global residual. Applied to both sections
    with the same weights (the siamese part).
    """

    def __init__(self, base_channels: int, channels: int, downsample: int, blocks: int,
                 layers: int, growth: int) -> None:
        super().__init__()
        self.shallow = nn.Sequential(nn.Conv2d(1, base_channels, 3, padding=1), nn.ReLU(inplace=True))
        steps = []
        width = base_channels
        n_steps = downsample.bit_length() - 1
        for i in range(n_steps):
            out = channels if i == n_steps - 1 else min(channels, width * 2)
            steps += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            width = out
        self.down = nn.Sequential(*steps)
        self.entry = nn.Conv2d(width, channels, 3, padding=1)
        self.blocks = nn.ModuleList(ResidualDenseBlock(channels, growth, layers) for _ in range(blocks))
        self.fusion = nn.Sequential(
            nn.Conv2d(blocks * channels, channels, 1), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, H, W) -> (skip (N, base, H, W), features (N, C, H/d, W/d))."""
        check_shape(x, "N,1,H,W", "encoder input")
        skip = self.shallow(x)
        entry = self.entry(self.down(skip))
        feats, outs = entry, []
        for block in self.blocks:
            feats = block(feats)
            outs.append(feats)
        return skip, entry + self.fusion(torch.cat(outs, dim=1))


class TimeFiLM(nn.Module):
    """Feature-wise modulation by the position t: ``x * (1 + scale(t)) + shift(t)`` (our addition)."""

    def __init__(self, channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * channels))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (N, C, h, w), t: (N,) -> (N, C, h, w)."""
        dims = check_shape(x, "N,C,h,w", "features")
        check_shape(t, "N", "t", N=dims["N"])
        scale, shift = self.mlp(torch.stack([t, 1.0 - t], dim=1)).chunk(2, dim=1)
        return x * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None]
