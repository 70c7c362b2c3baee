"""SSAN: sparse self-attention aggregation network (Wang et al., BioData Mining 2021), t-conditioned.

Siamese RDN -> attention-aware layer -> each side's attended features are decoded into a
synthesized frame (warp0 from a, warp1 from b) -> the hybrid network fuses them with a sigmoid mask.
Ours: each synthesized frame is a residual over its own input, and the mask logit is offset by
logit(1 - t), so a freshly initialised network outputs almost exactly (1 - t) a + t b.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.attention_net import AttentionConfig, AttentionInterpolator, mask_prior, scale_last_conv


@dataclass
class SSANConfig(AttentionConfig):
    """SSAN settings; see :class:`AttentionConfig`."""


class UpDecoder(nn.Module):
    """Bilinear x2 upsampling + 3x3 conv steps from C at 1/d back to ``base_channels`` at full size."""

    def __init__(self, channels: int, base_channels: int, downsample: int) -> None:
        super().__init__()
        steps = []
        width = channels
        for _ in range(downsample.bit_length() - 1):
            out = max(base_channels, width // 2)
            steps.append(nn.Sequential(nn.Conv2d(width, out, 3, padding=1), nn.ReLU(inplace=True)))
            width = out
        self.steps = nn.ModuleList(steps)
        self.merge = nn.Sequential(nn.Conv2d(width + base_channels, base_channels, 3, padding=1),
                                   nn.ReLU(inplace=True))

    def forward(self, feats: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w), skip (N, base, H, W) -> (N, base, H, W)."""
        x = feats
        for step in self.steps:
            x = step(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        return self.merge(torch.cat([x, skip], dim=1))


class SSANModel(AttentionInterpolator):
    """The SSAN interpolator; ``forward(a, b, t)`` as in :class:`InterpolationModel`."""

    name = "ssan"

    def __init__(self, config: SSANConfig | None = None) -> None:
        super().__init__(config or SSANConfig())
        c = self.config
        self.decoder = UpDecoder(c.channels, c.base_channels, c.downsample)
        self.synthesis = nn.Conv2d(c.base_channels, 1, 3, padding=1)
        self.hybrid = nn.Sequential(
            nn.Conv2d(2 * c.base_channels + 2, c.base_channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c.base_channels, 1, 3, padding=1),
        )
        scale_last_conv(self.synthesis, 1e-3)
        scale_last_conv(self.hybrid[-1], 1e-3)

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Synthesize a frame from each side and fuse them with a sigmoid mask."""
        n = a.shape[0]
        skips, feats = self.attended_features(a, b, t)
        decoded = self.decoder(feats, skips)
        warps = torch.cat([a, b], dim=0) + self.synthesis(decoded)
        warp0, warp1 = warps[:n], warps[n:]
        mask_in = torch.cat([decoded[:n], decoded[n:], warp0, warp1], dim=1)
        mask = torch.sigmoid(mask_prior(t) + self.hybrid(mask_in))
        return mask * warp0 + (1.0 - mask) * warp1
