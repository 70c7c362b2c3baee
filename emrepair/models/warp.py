"""Backward warping of images by a dense per-pixel displacement field, with ``grid_sample``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from emrepair.models.base import check_shape
from emrepair.models.deformable import base_grid


def warp_by_flow(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``out(y, x) = image(y + flow_y(y, x), x + flow_x(y, x))``, bilinear, border values outside.

    Args:
        image: (N, C, H, W).
        flow: (N, 2, H, W) in pixels, (dy, dx) order (the convention of ``FoldResult.displacement``).

    Returns:
        (N, C, H, W) in image's dtype; sampling is done in float32.
    """
    dims = check_shape(image, "N,C,H,W", "image")
    check_shape(flow, "N,2,H,W", "flow", N=dims["N"], H=dims["H"], W=dims["W"])
    h, w = dims["H"], dims["W"]
    coords = base_grid(h, w, image.device, torch.float32) + flow.float().flip(1).permute(0, 2, 3, 1)
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=image.device)
    grid = coords * scale - 1.0
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(image.dtype)
