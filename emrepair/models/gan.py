"""Jain's fully convolutional section interpolator (arXiv 1707.00067, section 3), t-conditioned.

Two 2-D convolution modules on each neighbouring section (shared weights) -> one 3-D convolution
that fuses the two stacked feature sections (B, C, 2, H, W) into one -> three 2-D modules -> a
linear output conv. Modules are full pre-activation residual units (He et al. 2016), 50 filters,
no pooling. Ours: 'same' padding instead of 'valid' (so tiles keep their size), FiLM conditioning
on t after the 3-D fusion, and the output is a residual over the t-weighted linear blend. The paper
trains it with an adversarial loss; the discriminator is in ``discriminator.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.base import InterpolationModel, linear_blend
from emrepair.models.rdn import TimeFiLM


@dataclass
class GANConfig:
    """Settings of the Jain generator.

    Attributes:
        filters: feature maps of every layer but the output (paper: 50).
        kernel: 2-D kernel size.
        pre_modules: residual modules on each section before the 3-D fusion (paper: 2).
        post_modules: residual modules after it (paper: 3).
        halo: context pixels the tiler adds on each side of a tile.
    """

    filters: int = 50
    kernel: int = 3
    pre_modules: int = 2
    post_modules: int = 3
    halo: int = 16

    def __post_init__(self) -> None:
        if self.filters < 1 or self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"filters must be >= 1 and kernel odd, got {self.filters}, {self.kernel}")
        if self.pre_modules < 0 or self.post_modules < 0 or self.halo < 0:
            raise ValueError("pre_modules, post_modules and halo must be >= 0")


class PreActUnit2d(nn.Module):
    """Full pre-activation residual unit: x + conv(relu(conv(relu(x))))."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class GANModel(InterpolationModel):
    """The Jain generator; ``forward(a, b, t)`` as in :class:`InterpolationModel`."""

    name = "gan"
    size_multiple = 1

    def __init__(self, config: GANConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or GANConfig()
        self.stem = nn.Conv2d(1, c.filters, c.kernel, padding=c.kernel // 2)
        self.pre = nn.Sequential(*[PreActUnit2d(c.filters, c.kernel) for _ in range(c.pre_modules)])
        # fuses the two sections: depth kernel 2 with no depth padding turns (2, H, W) into (1, H, W)
        self.fuse3d = nn.Conv3d(c.filters, c.filters, (2, c.kernel, c.kernel), padding=(0, c.kernel // 2, c.kernel // 2))
        self.film = TimeFiLM(c.filters)
        self.post = nn.Sequential(*[PreActUnit2d(c.filters, c.kernel) for _ in range(c.post_modules)])
        self.out = nn.Conv2d(c.filters, 1, c.kernel, padding=c.kernel // 2)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    @property
    def halo(self) -> int:  # type: ignore[override]
        """Context the tiler should add each side, from the config."""
        return self.config.halo

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-section 2-D modules, 3-D fusion over the pair, 2-D modules, linear output."""
        n = a.shape[0]
        feats = self.pre(self.stem(torch.cat([a, b], 0)))
        stacked = torch.stack([feats[:n], feats[n:]], dim=2)  # (N, C, 2, H, W)
        fused = self.film(F.relu(self.fuse3d(stacked)[:, :, 0]), t)
        residual = self.out(F.relu(self.post(fused)))
        return linear_blend(a, b, t) + residual
