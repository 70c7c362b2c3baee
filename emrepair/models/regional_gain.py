"""Regional contrast correction for folded sections: a low-resolution U-Net that finds regions whose
contrast a fold changed (the dimmed or brightened patches beside real folds; the simulator's "contrast
box", after Deng et al., TMI 2022) and predicts the multiplicative gain that undoes the change.

The network sees the folded section and the mean of its two neighbours, both averaged over
``factor`` x ``factor`` blocks, with their log ratio (minus its median, so a section that is merely
brighter overall is left alone). In eval mode log gains smaller than ``deadzone`` are set to exactly
zero: wherever the network is not confident that the contrast changed, the folded pixels stay
bit-identical (in training the gain is left continuous so that gradients flow). The log gain is
upsampled bilinearly to full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.base import check_shape
from emrepair.models.small_unet import SmallUNet

EPS = 1e-3  # keeps the log ratio finite on black pixels


@dataclass
class RegionalGainConfig:
    """Settings of the regional contrast correction.

    Attributes:
        channels: width of the U-Net's first level (0 turns the correction off).
        levels: U-Net levels.
        factor: block size of the low-resolution grid the U-Net works on.
        deadzone: log gains below this (about 10 %) are treated as no change.
        max_log_gain: bound of the predicted log gain (ln 3: a factor between 1/3 and 3).
    """

    channels: int = 16
    levels: int = 4
    factor: int = 4
    deadzone: float = 0.1
    max_log_gain: float = 1.1

    def __post_init__(self) -> None:
        if self.channels < 0 or self.levels < 1 or self.factor < 1:
            raise ValueError(f"channels >= 0, levels >= 1 and factor >= 1 required, got {self}")
        if self.deadzone < 0 or self.max_log_gain <= 0:
            raise ValueError(f"deadzone must be >= 0 and max_log_gain > 0, got {self}")


class RegionalGain(nn.Module):
    """``forward(folded, reference, band) -> log_gain``, all (N, 1, H, W), any H and W.

    ``reference`` is what the section should look like at low resolution (the mean of its
    neighbours); ``band`` is 1 on the fold's dark band (ignored when estimating contrast).
    """

    def __init__(self, config: RegionalGainConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or RegionalGainConfig()
        widths = tuple(c.channels * 2 ** i for i in range(c.levels))
        # a fresh network changes nothing; channels == 0 builds none
        self.net = SmallUNet(4, 1, widths, out_std=0.0) if c.channels else None

    @property
    def multiple(self) -> int:
        """Padded input sides are multiples of this."""
        return self.config.factor * 2 ** (self.config.levels - 1)

    def forward(self, folded: torch.Tensor, reference: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
        """The full-resolution log gain; exactly 0 where the contrast looks unchanged."""
        dims = check_shape(folded, "N,1,H,W", "folded")
        check_shape(reference, "N,1,H,W", "reference", **dims)
        check_shape(band, "N,1,H,W", "band", **dims)
        h, w = dims["H"], dims["W"]
        if self.net is None:
            return torch.zeros_like(folded)
        m = self.multiple
        pad = (0, -w % m, 0, -h % m)
        x = torch.cat([folded, reference, band.to(folded.dtype)], dim=1)
        if pad[1] or pad[3]:
            x = F.pad(x, pad, mode="replicate")
        low = F.avg_pool2d(x, self.config.factor)
        f_lo, r_lo, b_lo = low[:, :1], low[:, 1:2], low[:, 2:3]
        ratio = torch.log(r_lo + EPS) - torch.log(f_lo + EPS)
        trusted = b_lo < 0.01
        centre = torch.stack([
            (r[k] if k.any() else r.flatten()).median() for r, k in zip(ratio[:, 0], trusted[:, 0])
        ]).view(-1, 1, 1, 1)
        raw = self.net(torch.cat([f_lo, r_lo, b_lo, ratio - centre], dim=1))
        log_gain = self.config.max_log_gain * torch.tanh(raw)
        if not self.training:
            log_gain = torch.where(log_gain.abs() > self.config.deadzone, log_gain, torch.zeros_like(log_gain))
        full = F.interpolate(log_gain, scale_factor=self.config.factor, mode="bilinear", align_corners=False)
        return full[..., :h, :w]


def apply_gain(folded: torch.Tensor, log_gain: torch.Tensor) -> torch.Tensor:
    """``folded * exp(log_gain)`` clamped to [0, 1]; pixels with a zero log gain are returned unchanged."""
    return torch.where(log_gain != 0, (folded * torch.exp(log_gain)).clamp(0.0, 1.0), folded)


def region_gain_fit(own_in: np.ndarray, ref_in: np.ndarray, own_out: np.ndarray,
                    ref_out: np.ndarray) -> tuple[float, float]:
    """Gain and offset that undo a regional contrast change, from pixels inside and outside the region.

    Outside the region the section relates to ``ref`` (what it should look like: the interpolation of its
    neighbours) by its mean and spread; the correction ``gain * own + offset`` gives the region the same relation.
    This is the region-limited counterpart of the network above, which works on folded sections only.
    Returns (1, 0) when either side has fewer than 64 pixels or no spread.
    """
    if min(own_in.size, own_out.size) < 64:
        return 1.0, 0.0
    o_in, r_in = own_in.astype(np.float64), ref_in.astype(np.float64)
    o_out, r_out = own_out.astype(np.float64), ref_out.astype(np.float64)
    spreads = [float(v.std()) for v in (o_in, r_in, o_out, r_out)]
    if min(spreads) <= 1e-9:
        return 1.0, 0.0
    target_std = spreads[1] * spreads[2] / spreads[3]
    target_mean = float(r_in.mean()) + (float(o_out.mean()) - float(r_out.mean()))
    gain = target_std / spreads[0]
    return gain, target_mean - gain * float(o_in.mean())
