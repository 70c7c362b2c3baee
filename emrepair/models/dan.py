"""DAN: deformation-aware network (Wang, Li, Chen, Han, CASIA), t-conditioned.

The front end is SSAN's (siamese RDN + two-level sparse self-attention, shared code). Where the
papers differ we differ too: DAN's "deformation-aware layer synthesizes the warped frames" and a
separate "blendnet" fuses them. The paper does not say how the frames are produced; we read
"deformation-aware" literally: the attended features predict, for each pixel, K sampling offsets
and weights (a deformable kernel) that resample the side's own input section, and blendnet is a
small full-resolution CNN over the two warped frames and the inputs that predicts the fusion mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.attention_net import AttentionConfig, AttentionInterpolator, mask_prior, scale_last_conv
from emrepair.models.deformable import deformable_sample


@dataclass
class DANConfig(AttentionConfig):
    """DAN settings; see :class:`AttentionConfig`.

    Attributes:
        samples: K, sampling points per output pixel of the deformable warp.
        blend_channels: width of the blendnet.
    """

    samples: int = 9
    blend_channels: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples < 1 or self.blend_channels < 1:
            raise ValueError(f"samples and blend_channels must be >= 1, got {self.samples}, {self.blend_channels}")


class DANModel(AttentionInterpolator):
    """The DAN interpolator; ``forward(a, b, t)`` as in :class:`InterpolationModel`."""

    name = "dan"

    def __init__(self, config: DANConfig | None = None) -> None:
        super().__init__(config or DANConfig())
        c = self.config
        k = c.samples
        self.deformation = nn.Sequential(
            nn.Conv2d(c.channels, c.channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c.channels, 3 * k, 3, padding=1),
        )
        # Near-zero offsets and near-uniform weights: each warp starts as its own input section.
        scale_last_conv(self.deformation[-1], 1e-3)
        self.blendnet = nn.Sequential(
            nn.Conv2d(5, c.blend_channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c.blend_channels, c.blend_channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c.blend_channels, 1, 3, padding=1),
        )
        scale_last_conv(self.blendnet[-1], 1e-3)

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Warp each side towards t with a deformable kernel, then fuse with blendnet's mask."""
        n, _, h, w = a.shape
        k = self.config.samples
        _, feats = self.attended_features(a, b, t)
        field = self.deformation(feats)
        # Offsets are predicted at feature resolution in full-resolution pixels and upsampled.
        field = F.interpolate(field, size=(h, w), mode="bilinear", align_corners=False)
        offsets = field[:, : 2 * k].reshape(2 * n, k, 2, h, w)
        weights = torch.softmax(field[:, 2 * k:], dim=1)
        warps = deformable_sample(torch.cat([a, b], dim=0), offsets, weights)
        warp0, warp1 = warps[:n], warps[n:]
        t_plane = t.view(-1, 1, 1, 1).expand(n, 1, h, w)
        logits = self.blendnet(torch.cat([warp0, warp1, a, b, t_plane], dim=1))
        mask = torch.sigmoid(mask_prior(t) + logits)
        return mask * warp0 + (1.0 - mask) * warp1
