"""Fold-aware section repair after Huang et al. (ECCVW 2020): interpolation, unfolding, fusion.

1. Interpolation: the section predicted from its two neighbours at t = 0.5 by an interpolation model
   (``SFFConfig.interpolator``; "linear" by default, see docs/models.md for why).
2. Unfolding: a small U-Net sees the folded section, the interpolated one and the band mask and
   predicts a dense (dy, dx) flow; the relit section (see 3) is warped with it so that tissue pulled
   towards the band returns to where it belongs, keeping the faint texture it had under the band.
3. Fusion: a second U-Net combines the unfolded section, the interpolated one, the "relit" one (the
   band brightened to the interpolation's local mean, recovering the faint tissue a fold leaves;
   ours), the folded one and the band mask: a per-pixel softmax choice among unfolded, relit and
   interpolated (prior: unfolded off the band, interpolated on it) plus a small residual.

0. Before the three stages, a regional contrast correction (``emrepair.models.regional_gain``, ours)
   rescales regions whose contrast the fold changed, judged against the neighbours at low resolution.

The folded section's own pixels are kept bit-identical farther than ``reach + transition`` pixels
from the band, except where stage 0 found a contrast change; the fused result replaces them on and
near the band, with a smooth transition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from emrepair.models.base import check_shape
from emrepair.models.fold_blend import compose_repair, near_band_weight, relight_band
from emrepair.models.interpolators import INTERPOLATORS, build_interpolator
from emrepair.models.regional_gain import RegionalGain, RegionalGainConfig, apply_gain
from emrepair.models.small_unet import SmallUNet
from emrepair.models.warp import warp_by_flow

MASK_PRIOR = 6.0  # softmax weight ~0.995: a fresh fusion takes unfolded off the band, interpolated on it


@dataclass
class SFFConfig:
    """Settings of the fold repair model.

    Attributes:
        interpolator: registered interpolation model used as stage 1 (its default config; its
            weights, when learned, are part of this model's checkpoint).
        unfold_channels: width of the unfolding U-Net's first level (doubling per level).
        fusion_channels: width of the fusion U-Net's first level.
        levels: U-Net levels (size multiple 2 ** (levels - 1)).
        max_flow: largest unfolding displacement in pixels (flow = max_flow * tanh(raw)).
        reach: pixels from the band within which the fused result replaces the folded section
            (the simulator's largest displacement reach is 80).
        transition: width of the smooth hand-over to the folded pixels beyond ``reach``.
        halo: context pixels the tiler adds on each side of a tile.
        contrast_channels: width of the regional contrast correction's U-Net (0: no correction).
        contrast_factor: block size of the grid the contrast correction works on.
    """

    interpolator: str = "linear"
    unfold_channels: int = 16
    fusion_channels: int = 16
    levels: int = 3
    max_flow: float = 12.0
    reach: int = 80
    transition: int = 16
    halo: int = 32
    contrast_channels: int = 16
    contrast_factor: int = 4

    def __post_init__(self) -> None:
        if self.interpolator not in INTERPOLATORS:
            raise ValueError(f"interpolator must be one of {INTERPOLATORS}, got {self.interpolator!r}")
        for label in ("unfold_channels", "fusion_channels", "levels"):
            if getattr(self, label) < 1:
                raise ValueError(f"{label} must be >= 1, got {getattr(self, label)}")
        if self.max_flow <= 0:
            raise ValueError(f"max_flow must be positive, got {self.max_flow}")
        RegionalGainConfig(channels=self.contrast_channels, factor=self.contrast_factor)  # validates both
        for label in ("reach", "transition", "halo"):
            if getattr(self, label) < 0:
                raise ValueError(f"{label} must be >= 0, got {getattr(self, label)}")


@dataclass
class SFFParts:
    """Intermediate results of one repair, for training losses and inspection.

    Attributes:
        log_gain: stage 0's regional log gain, (N, 1, H, W); 0 where the contrast is unchanged.
        corrected: the folded section after stage 0 (the input of stages 1-3).
        interpolated: stage 1, (N, 1, H, W).
        flow: stage 2's (dy, dx) flow, (N, 2, H, W) in pixels.
        unfolded: the relit section warped by ``flow``.
        relit: the folded section with its band brightened (see ``relight_band``).
        fused: stage 3, before composition with the folded section.
        weight: the composition weight (1 near the band, exactly 0 far from it).
        output: the composed result.
    """

    log_gain: torch.Tensor
    corrected: torch.Tensor
    interpolated: torch.Tensor
    flow: torch.Tensor
    unfolded: torch.Tensor
    relit: torch.Tensor
    fused: torch.Tensor
    weight: torch.Tensor
    output: torch.Tensor


class SFFModel(nn.Module):
    """Fold repair: ``forward(folded, left, right, band_mask) -> (B, 1, H, W)``.

    All inputs are (B, 1, H, W); images float in [0, 1], band_mask bool or 0/1 float (True on the
    dark band). ``left`` and ``right`` are the neighbouring sections (the folded one sits halfway).

    Attributes:
        name: "sff"; kind: "fold" (the registry interface flag).
        halo, size_multiple: as for interpolation models (the fold tiler pads and overlaps).
    """

    name = "sff"
    kind = "fold"

    def __init__(self, config: SFFConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or SFFConfig()
        self.interpolator = build_interpolator(c.interpolator)
        unfold_widths = tuple(c.unfold_channels * 2 ** i for i in range(c.levels))
        fusion_widths = tuple(c.fusion_channels * 2 ** i for i in range(c.levels))
        self.unfolding = SmallUNet(3, 2, unfold_widths, out_std=0.0)  # starts with zero flow
        self.fusion = SmallUNet(5, 4, fusion_widths, out_std=0.0)  # starts as the prior choice
        self.contrast = RegionalGain(RegionalGainConfig(channels=c.contrast_channels, factor=c.contrast_factor))

    @property
    def halo(self) -> int:
        """Context pixels for the tiler, from the config."""
        return self.config.halo

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of the U-Nets' and the interpolator's size multiples."""
        return math.lcm(self.unfolding.size_multiple, int(self.interpolator.size_multiple))

    def forward(self, folded: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                band_mask: torch.Tensor) -> torch.Tensor:
        """The repaired section; clamped to [0, 1] in eval mode (see :meth:`parts`)."""
        out = self.parts(folded, left, right, band_mask).output
        return out if self.training else out.clamp(0.0, 1.0)

    def parts(self, folded: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
              band_mask: torch.Tensor) -> SFFParts:
        """Run the three stages and the composition; returns every intermediate."""
        band = self.check_inputs(folded, left, right, band_mask)
        log_gain = self.section_gain(folded, left, right, band)
        corrected = apply_gain(folded, log_gain)
        fused, flow, unfolded, interpolated, relit = self.restore(corrected, left, right, band)
        weight = near_band_weight(band, self.config.reach, self.config.transition)
        output = compose_repair(corrected, fused, weight)
        return SFFParts(log_gain, corrected, interpolated, flow, unfolded, relit, fused, weight, output)

    def section_gain(self, folded: torch.Tensor, left: torch.Tensor, right: torch.Tensor, band: torch.Tensor
                     ) -> torch.Tensor:
        """Stage 0 on a whole section (any H, W): the log gain that undoes regional contrast changes.

        The tiled pipeline runs it once per section, since contrast is judged over large regions.
        """
        return self.contrast(folded, 0.5 * (left + right), band.to(folded.dtype))

    def restore(self, folded: torch.Tensor, left: torch.Tensor, right: torch.Tensor, band: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        """The three stages without composition: (fused, flow, unfolded, interpolated, relit).

        ``folded`` is the section after stage 0 (see :meth:`section_gain`).
        ``band`` is a 0/1 float tensor of folded's dtype (see :meth:`check_inputs`). The tiled
        pipeline blends ``fused`` over tiles and composes once over the whole section.
        """
        n = folded.shape[0]
        t = torch.full((n,), 0.5, dtype=folded.dtype, device=folded.device)
        interpolated = self.interpolator(left, right, t)
        raw_flow = self.unfolding(torch.cat([folded, interpolated, band], dim=1))
        flow = self.config.max_flow * torch.tanh(raw_flow)
        relit = relight_band(folded, interpolated, band)
        # warping the relit section: tissue pulled back from under the band keeps its (faint) texture
        unfolded = warp_by_flow(relit, flow)
        out = self.fusion(torch.cat([unfolded, interpolated, relit, folded, band], dim=1))
        logits, residual = out[:, :3], out[:, 3:]
        prior = MASK_PRIOR * torch.cat([1.0 - band, torch.zeros_like(band), band], dim=1)
        choice = torch.softmax(prior + logits, dim=1)
        candidates = torch.cat([unfolded, relit, interpolated], dim=1)
        fused = (choice * candidates).sum(dim=1, keepdim=True) + residual
        return fused, flow, unfolded, interpolated, relit

    def check_inputs(self, folded: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                     band_mask: torch.Tensor) -> torch.Tensor:
        """Validate the four inputs; return the band as a 0/1 tensor of folded's dtype.

        Raises:
            ValueError: shapes, dtypes or devices that break the contract of :meth:`forward`.
        """
        dims = check_shape(folded, "B,1,H,W", "folded")
        for label, x in (("left", left), ("right", right), ("band_mask", band_mask)):
            check_shape(x, "B,1,H,W", label, **dims)
        for label, x in (("folded", folded), ("left", left), ("right", right)):
            if not x.is_floating_point():
                raise ValueError(f"{label} must be a floating-point tensor, got {x.dtype}")
            if x.dtype != folded.dtype or x.device != folded.device:
                raise ValueError(f"folded, left and right must share dtype and device, got {label} "
                                 f"{x.dtype}/{x.device} vs {folded.dtype}/{folded.device}")
        if band_mask.device != folded.device:
            raise ValueError(f"band_mask must be on {folded.device}, got {band_mask.device}")
        m = self.size_multiple
        if dims["H"] % m or dims["W"] % m:
            raise ValueError(f"sff: H and W must be multiples of {m}, got {dims['H']}x{dims['W']} (pad first)")
        return (band_mask > 0.5 if band_mask.is_floating_point() else band_mask.bool()).to(folded.dtype)
