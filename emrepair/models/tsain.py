"""TSAIN: temporal spatial-adaptive interpolation with deformable refinement (Wang et al., TSADR,
arXiv 2101.06771), t-conditioned.

Feature extractor (strided conv + residual blocks, shared by both sides) -> temporal interpolation:
each side's features are resampled towards the wanted section by modulated deformable convolution
in a 3-level pyramid with a cascade refinement at the top (EDVR's PCD alignment); offsets come from
both sides' features and t -> 1x1 fusion -> three residual spatial-adaptive blocks (RSAB) -> three
stacked deformable refinement blocks (DRB) -> residual-block reconstruction -> a residual over the
t-weighted linear blend, upsampled by pixel shuffle, so a fresh network outputs the linear blend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.base import InterpolationModel, linear_blend
from emrepair.models.deform_conv import ModulatedDeformConv2d
from emrepair.models.rdn import TimeFiLM

PYRAMID_LEVELS = 3


@dataclass
class TSAINConfig:
    """TSAIN settings.

    Attributes:
        channels: feature width at every level.
        downsample: 1, 2 or 4; the extractor's first conv stride (features run at 1/downsample).
        extract_blocks: residual blocks in the feature extractor (paper k1 = 5).
        recon_blocks: residual blocks in the reconstruction (paper k2 = 40).
        offset_groups: deformable offset groups (channels must divide by it).
        rsab_blocks: residual spatial-adaptive blocks (paper: 3).
        drb_blocks: stacked deformable refinement blocks (paper: 3).
        halo: context pixels the tiler adds on each side of a tile.
    """

    channels: int = 32
    downsample: int = 2
    extract_blocks: int = 2
    recon_blocks: int = 4
    offset_groups: int = 4
    rsab_blocks: int = 3
    drb_blocks: int = 3
    halo: int = 32

    def __post_init__(self) -> None:
        if self.downsample not in (1, 2, 4):
            raise ValueError(f"downsample must be 1, 2 or 4, got {self.downsample}")
        if self.channels < 1 or self.offset_groups < 1 or self.channels % self.offset_groups:
            raise ValueError(f"channels ({self.channels}) must be a positive multiple of offset_groups "
                             f"({self.offset_groups})")
        for label in ("extract_blocks", "recon_blocks", "rsab_blocks", "drb_blocks", "halo"):
            if getattr(self, label) < 0:
                raise ValueError(f"{label} must be >= 0, got {getattr(self, label)}")


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with slope 0.1, as in EDVR."""
    return F.leaky_relu(x, 0.1)


class ResidualBlock(nn.Module):
    """conv - ReLU - conv with an identity skip (no batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return x + self.conv2(F.relu(self.conv1(x)))


class PyramidExtractor(nn.Module):
    """A strided conv and residual blocks (level 1), then two stride-2 levels."""

    def __init__(self, c: TSAINConfig) -> None:
        super().__init__()
        stride = c.downsample
        self.first = nn.Conv2d(1, c.channels, 2 * stride + 1 if stride > 1 else 3, stride=stride, padding=stride)
        self.blocks = nn.Sequential(*[ResidualBlock(c.channels) for _ in range(c.extract_blocks)])
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c.channels, c.channels, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
                          nn.Conv2d(c.channels, c.channels, 3, padding=1), nn.LeakyReLU(0.1))
            for _ in range(PYRAMID_LEVELS - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 1, H, W) -> [level 1, level 2, level 3] features (N, C, H/d/2^l, W/d/2^l)."""
        feats = [self.blocks(lrelu(self.first(x)))]
        for down in self.down:
            feats.append(down(feats[-1]))
        return feats


class PCDInterpolation(nn.Module):
    """Pyramid, cascading, deformable resampling of one side's features towards position t.

    Offsets at each level come from both sides' features (self first), modulated by (t, 1 - t),
    plus the upsampled offsets of the coarser level; aligned features are fused with the upsampled
    coarser result; a final cascade DCN refines level 1 from both sides' level-1 results.
    """

    def __init__(self, c: TSAINConfig) -> None:
        super().__init__()
        ch, g = c.channels, c.offset_groups
        self.offset_in = nn.ModuleList(nn.Conv2d(2 * ch, ch, 3, padding=1) for _ in range(PYRAMID_LEVELS))
        self.film = nn.ModuleList(TimeFiLM(ch) for _ in range(PYRAMID_LEVELS))
        self.offset_merge = nn.ModuleList(nn.Conv2d(2 * ch, ch, 3, padding=1) for _ in range(PYRAMID_LEVELS - 1))
        self.offset_out = nn.ModuleList(nn.Conv2d(ch, ch, 3, padding=1) for _ in range(PYRAMID_LEVELS - 1))
        self.dcn = nn.ModuleList(ModulatedDeformConv2d(ch, ch, ch, 3, g) for _ in range(PYRAMID_LEVELS))
        self.feat_merge = nn.ModuleList(nn.Conv2d(2 * ch, ch, 3, padding=1) for _ in range(PYRAMID_LEVELS - 1))
        self.cascade_offset = nn.Sequential(nn.Conv2d(2 * ch, ch, 3, padding=1), nn.LeakyReLU(0.1),
                                            nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.1))
        self.cascade = ModulatedDeformConv2d(ch, ch, ch, 3, g)

    def forward(self, own: list[torch.Tensor], other: list[torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        """own, other: pyramids of (N, C, h_l, w_l); t: (N,) the own side's distance weight -> (N, C, h_1, w_1)."""
        offset = aligned = None
        for level in reversed(range(PYRAMID_LEVELS)):
            cur = self.film[level](lrelu(self.offset_in[level](torch.cat([own[level], other[level]], 1))), t)
            if offset is not None:
                up = F.interpolate(offset, size=cur.shape[-2:], mode="bilinear", align_corners=False) * 2.0
                cur = lrelu(self.offset_merge[level](torch.cat([cur, up], 1)))
                cur = lrelu(self.offset_out[level](cur))
            offset = cur
            feat = self.dcn[level](own[level], offset)
            if aligned is not None:
                up = F.interpolate(aligned, size=feat.shape[-2:], mode="bilinear", align_corners=False)
                feat = self.feat_merge[level](torch.cat([feat, up], 1))
            aligned = feat if level == 0 else lrelu(feat)
        n = aligned.shape[0] // 2  # rows [0, n) are the a side, [n, 2n) the b side
        swapped = torch.cat([aligned[n:], aligned[:n]], 0)
        return lrelu(self.cascade(aligned, self.cascade_offset(torch.cat([aligned, swapped], 1))))


class RSAB(nn.Module):
    """Residual spatial-adaptive block: ``x + Conv(Act(DConv(x, Phi = g(x))))``."""

    def __init__(self, channels: int, offset_groups: int) -> None:
        super().__init__()
        self.offset = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1))
        self.dcn = ModulatedDeformConv2d(channels, channels, channels, 3, offset_groups)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, C, h, w)."""
        return x + self.conv(lrelu(self.dcn(x, self.offset(x))))


class DRB(nn.Module):
    """Deformable refinement block: align each input side's features to the current intermediate
    features (offsets from [F_side, F_1]) and refine F_1 from the aligned pair (residual)."""

    def __init__(self, channels: int, offset_groups: int) -> None:
        super().__init__()
        self.offset = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.LeakyReLU(0.1))
        self.dcn = ModulatedDeformConv2d(channels, channels, channels, 3, offset_groups)
        self.refine = nn.Sequential(nn.Conv2d(3 * channels, channels, 3, padding=1), nn.LeakyReLU(0.1),
                                    nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, f0: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(F0, F1, F2) -> (F0 aligned, F1 refined, F2 aligned), all (N, C, h, w)."""
        n = f0.shape[0]
        sides = torch.cat([f0, f2], 0)
        mid = torch.cat([f1, f1], 0)
        aligned = self.dcn(sides, self.offset(torch.cat([sides, mid], 1)))
        a0, a2 = aligned[:n], aligned[n:]
        return a0, f1 + self.refine(torch.cat([a0, f1, a2], 1)), a2


class TSAINModel(InterpolationModel):
    """The TSAIN interpolator; ``forward(a, b, t)`` as in :class:`InterpolationModel`."""

    name = "tsain"

    def __init__(self, config: TSAINConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TSAINConfig()
        ch = c.channels
        self.extractor = PyramidExtractor(c)
        self.temporal = PCDInterpolation(c)
        self.fuse = nn.Conv2d(2 * ch, ch, 1)
        self.film = TimeFiLM(ch)
        self.rsab = nn.ModuleList(RSAB(ch, c.offset_groups) for _ in range(c.rsab_blocks))
        self.drb = nn.ModuleList(DRB(ch, c.offset_groups) for _ in range(c.drb_blocks))
        self.reconstruct = nn.Sequential(*[ResidualBlock(ch) for _ in range(c.recon_blocks)])
        self.to_residual = nn.Conv2d(ch, c.downsample * c.downsample, 3, padding=1)
        nn.init.normal_(self.to_residual.weight, std=1e-3)
        nn.init.zeros_(self.to_residual.bias)

    @property
    def halo(self) -> int:  # type: ignore[override]
        """Context the tiler should add each side, from the config."""
        return self.config.halo

    @property
    def size_multiple(self) -> int:  # type: ignore[override]
        """H and W must divide by downsample * 2 ** (levels - 1)."""
        return self.config.downsample * 2 ** (PYRAMID_LEVELS - 1)

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Interpolate features from both sides, refine them, and decode a residual over linear."""
        n = a.shape[0]
        pyramid = self.extractor(torch.cat([a, b], 0))
        own = pyramid
        other = [torch.cat([p[n:], p[:n]], 0) for p in pyramid]
        # the a side is conditioned on t, the b side on 1 - t (sides share all weights)
        aligned = self.temporal(own, other, torch.cat([t, 1.0 - t], 0))
        f1 = self.film(self.fuse(torch.cat([aligned[:n], aligned[n:]], 1)), t)
        for block in self.rsab:
            f1 = block(f1)
        f0, f2 = pyramid[0][:n], pyramid[0][n:]
        for block in self.drb:
            f0, f1, f2 = block(f0, f1, f2)
        residual = F.pixel_shuffle(self.to_residual(self.reconstruct(f1)), self.config.downsample)
        return linear_blend(a, b, t) + residual
