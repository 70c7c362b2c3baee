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
    """Separable box mean of a (N, 1, H, W) map, the border replicated outside the image (so a band
    that runs off the section keeps full weight up to the edge)."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    x = F.avg_pool2d(F.pad(mask, (radius, radius, 0, 0), mode="replicate"), (1, k), stride=1)
    return F.avg_pool2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), (k, 1), stride=1)


def near_band_weight(band: torch.Tensor, reach: int, transition: int) -> torch.Tensor:
    """The repair weight for a (N, 1, H, W) band mask: 1 within ``reach - transition`` pixels of the
    band, a linear ramp (a box mean of the reach mask) down to exactly 0 beyond ``reach + transition``.

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


def relight_band(folded: torch.Tensor, reference: torch.Tensor, band: torch.Tensor, radius: int = 8,
                 max_gain: float = 60.0) -> torch.Tensor:
    """The folded section with its dark band brightened to the local mean of ``reference``.

    Folds darken the band but often leave a faint copy of the tissue (``darkness`` < 1 in the
    simulator); scaling the band by ``boxmean(reference) / boxmean(folded)`` over band pixels
    (both within ``radius``) recovers that texture at the right brightness. Off the band the
    folded section is returned unchanged. All tensors (N, 1, H, W); band 0/1.
    """
    check_shape(folded, "N,1,H,W", "folded")
    num = box_blur((reference * band).float(), radius)
    den = box_blur((folded * band).float(), radius).clamp_min(1e-4)
    gain = (num / den).clamp(1.0, max_gain).to(folded.dtype)
    return torch.where(band > 0, (folded * gain).clamp(0.0, 1.0), folded)
