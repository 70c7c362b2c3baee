"""Jain's convolution-pooling discriminator on (neighbour, section) pairs, for adversarial training.

Three modules of convolution + 2x2 max pooling applied to each of the two sections independently
(shared weights), a flattening that concatenates both, dropout, a fully connected layer and a
scalar. Ours: an adaptive average pool to a fixed grid before flattening so any input size works,
and the scalar is returned as a logit (apply a sigmoid, or use ``BCEWithLogitsLoss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from emrepair.models.base import check_shape


@dataclass
class DiscriminatorConfig:
    """Discriminator settings.

    Attributes:
        filters: feature maps of each convolution (paper: 50).
        kernel: convolution kernel size.
        modules: convolution-pooling modules (paper: 3).
        grid: side of the pooled grid flattened into the fully connected layer.
        dropout: dropout probability before the fully connected layer.
    """

    filters: int = 50
    kernel: int = 3
    modules: int = 3
    grid: int = 4
    dropout: float = 0.5


class PairDiscriminator(nn.Module):
    """``forward(neighbour, section) -> (B, 1)`` real-vs-fake logits; inputs (B, 1, H, W) in [0, 1]."""

    name = "gan_discriminator"

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or DiscriminatorConfig()
        layers: list[nn.Module] = []
        width = 1
        for _ in range(c.modules):
            layers += [nn.Conv2d(width, c.filters, c.kernel, padding=c.kernel // 2), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            width = c.filters
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(c.grid), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(2 * c.filters * c.grid * c.grid, 1))

    @property
    def min_size(self) -> int:
        """Smallest input side: every pooling needs at least 2 pixels."""
        return 2 ** self.config.modules

    def forward(self, neighbour: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        """Logit that ``section`` is a real section next to ``neighbour``."""
        dims = check_shape(neighbour, "B,1,H,W", "neighbour")
        check_shape(section, "B,1,H,W", "section", **dims)
        if min(dims["H"], dims["W"]) < self.min_size:
            raise ValueError(f"discriminator inputs must be at least {self.min_size} pixels, got {dims['H']}x{dims['W']}")
        n = dims["B"]
        feats = self.features(torch.cat([neighbour, section], 0))
        return self.head(torch.cat([feats[:n], feats[n:]], 1))
