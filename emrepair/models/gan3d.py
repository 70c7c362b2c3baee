"""Jain's 3-D super-resolution generator (arXiv 1707.00067, section 5): more sections along z.

``forward(stack, factor)``: stack (B, 1, D, H, W) in [0, 1] -> (B, 1, (D - 1) * factor + 1, H, W),
with the input sections passed through exactly at z = 0, factor, 2 * factor, ... and factor - 1 new
sections between each pair. Three pre-activation 3-D residual modules -> a transposed 3-D
convolution along z (stride = factor) -> two more 3-D modules -> a linear output conv, added to the
linear interpolation along z. Ours: 'same' padding instead of 'valid'; one depthwise transposed
conv per supported factor (kernel 2 * factor - 1, initialised to the linear-interpolation tent), so
a fresh network reproduces linear interpolation; originals are copied back after the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.base import check_volume_input


@dataclass
class GAN3DConfig:
    """Settings of the 3-D generator.

    Attributes:
        filters: feature maps (paper: 50; fewer by default since 3-D convolutions are costly).
        pre_modules: residual modules before the z upsampling (paper: 3).
        post_modules: residual modules after it (paper: 2).
        max_factor: largest z upsampling factor offered (one transposed conv per factor 2..max).
        halo: context pixels in y and x for a tiler.
    """

    filters: int = 24
    pre_modules: int = 3
    post_modules: int = 2
    max_factor: int = 4
    halo: int = 16

    def __post_init__(self) -> None:
        if self.filters < 1 or self.max_factor < 2:
            raise ValueError(f"filters must be >= 1 and max_factor >= 2, got {self.filters}, {self.max_factor}")
        if self.pre_modules < 0 or self.post_modules < 0 or self.halo < 0:
            raise ValueError("pre_modules, post_modules and halo must be >= 0")


class PreActUnit3d(nn.Module):
    """Full pre-activation 3-D residual unit with 3x3x3 kernels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, D, H, W) -> same shape."""
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def tent_transposed_conv(channels: int, factor: int) -> nn.ConvTranspose3d:
    """Depthwise transposed conv along z by ``factor`` that starts as linear interpolation.

    Kernel 2f - 1, stride f, padding f - 1: output depth (D - 1) f + 1, and the tent
    1 - |k - (f - 1)| / f places input z exactly at output z * f.
    """
    conv = nn.ConvTranspose3d(channels, channels, (2 * factor - 1, 1, 1), stride=(factor, 1, 1),
                              padding=(factor - 1, 0, 0), groups=channels)
    tent = 1.0 - (torch.arange(2 * factor - 1, dtype=torch.float32) - (factor - 1)).abs() / factor
    with torch.no_grad():
        conv.weight.copy_(tent.view(1, 1, -1, 1, 1).expand_as(conv.weight))
        conv.bias.zero_()
    return conv


class GAN3DModel(nn.Module):
    """The 3-D generator; ``forward(stack, factor)`` (see the module docstring). kind = "volume"."""

    name = "gan3d"
    kind = "volume"
    size_multiple = 1

    def __init__(self, config: GAN3DConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or GAN3DConfig()
        self.stem = nn.Conv3d(1, c.filters, 3, padding=1)
        self.pre = nn.Sequential(*[PreActUnit3d(c.filters) for _ in range(c.pre_modules)])
        self.upsample = nn.ModuleDict({str(f): tent_transposed_conv(c.filters, f) for f in range(2, c.max_factor + 1)})
        self.post = nn.Sequential(*[PreActUnit3d(c.filters) for _ in range(c.post_modules)])
        self.out = nn.Conv3d(c.filters, 1, 3, padding=1)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    @property
    def halo(self) -> int:
        """Context pixels in y and x, from the config."""
        return self.config.halo

    @property
    def factors(self) -> tuple[int, ...]:
        """The z upsampling factors this model offers."""
        return tuple(range(1, self.config.max_factor + 1))

    def forward(self, stack: torch.Tensor, factor: int) -> torch.Tensor:
        """(B, 1, D, H, W) in [0, 1], D >= 2 -> (B, 1, (D - 1) * factor + 1, H, W).

        Output sections z * factor equal the input sections exactly; eval mode clamps to [0, 1].

        Raises:
            ValueError: bad shape, dtype or a factor outside :attr:`factors`.
        """
        dims = check_volume_input(stack, factor, self.factors)
        if factor == 1:
            return stack.clone()
        depth = (dims["D"] - 1) * factor + 1
        linear = F.interpolate(stack, size=(depth, dims["H"], dims["W"]), mode="trilinear", align_corners=True)
        feats = self.upsample[str(factor)](self.pre(self.stem(stack)))
        out = linear + self.out(F.relu(self.post(feats)))
        if not self.training:
            out = out.clamp(0.0, 1.0)
        out = out.clone()
        out[:, :, ::factor] = stack  # the measured sections are never changed
        return out
