"""Where a fold repair may change pixels: a soft weight that is 1 on and near the band and exactly 0
farther than ``reach + transition`` pixels (Chebyshev distance) from it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from emrepair.models.base import check_shape


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Square (Chebyshev) dilation of a (N, 1, H, W) 0/1 float mask by ``radius`` pixels (separable)."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    x = F.max_pool2d(mask, (1, k), stride=1, padding=(0, radius))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0))


def box_blur(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable box mean of a (N, 1, H, W) map, zeros outside the image."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    x = F.avg_pool2d(mask, (1, k), stride=1, padding=(0, radius), count_include_pad=True)
    return F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=True)


def near_band_weight(band: torch.Tensor, reach: int, transition: int) -> torch.Tensor:
    """The repair weight for a (N, 1, H, W) band mask: 1 within ``reach`` of the band (when
    reach >= transition), falling linearly-ish to exactly 0 over the next ``transition`` pixels.

    Computed in float32 whatever the input dtype, so zero stays exactly zero.
    """
    check_shape(band, "N,1,H,W", "band")
    if reach < 0 or transition < 0:
        raise ValueError(f"reach and transition must be >= 0, got {reach}, {transition}")
    near = dilate((band.float() > 0.5).float(), reach)
    weight = box_blur(near, transition).clamp(0.0, 1.0)
    # avg_pool rounding may leave tiny positive values far away; only pixels within reach + transition count
    support = dilate(near, transition)
    return torch.where(support > 0, weight, torch.zeros_like(weight))


def compose_repair(folded: torch.Tensor, repaired: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``folded`` where weight is 0 (bit-identical), ``w * repaired + (1 - w) * folded`` elsewhere."""
    check_shape(weight, "N,1,H,W", "weight")
    w = weight.to(folded.dtype)
    return torch.where(weight > 0, w * repaired + (1.0 - w) * folded, folded)
