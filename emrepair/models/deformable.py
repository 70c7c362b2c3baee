"""Deformable sampling in pure PyTorch: each output pixel is a weighted sum of K input samples
taken at learned offsets (a deformable kernel), done with ``grid_sample``; no torchvision needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from emrepair.models.base import check_shape


def base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, H, W, 2) pixel coordinates (x, y) of every pixel."""
    ys = torch.arange(h, device=device, dtype=dtype)
    xs = torch.arange(w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)[None]


def deformable_sample(image: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``out(x) = sum_k weights_k(x) * image(x + offsets_k(x))`` with bilinear sampling.

    Args:
        image: (N, C, H, W).
        offsets: (N, K, 2, H, W) displacements in pixels, (dx, dy) order.
        weights: (N, K, H, W), typically a softmax over K.

    Returns:
        (N, C, H, W). Samples outside the image take the nearest border value.
    """
    dims = check_shape(image, "N,C,H,W", "image")
    n, c, h, w = dims["N"], dims["C"], dims["H"], dims["W"]
    k = check_shape(offsets, "N,K,2,H,W", "offsets", N=n, H=h, W=w)["K"]
    check_shape(weights, "N,K,H,W", "weights", N=n, K=k, H=h, W=w)
    # Sample in float32 whatever the image dtype: fp16/bf16 grids cannot address pixels of a tile.
    coords = base_grid(h, w, image.device, torch.float32) + offsets.float().permute(0, 1, 3, 4, 2).reshape(n * k, h, w, 2)
    # Normalise to [-1, 1] with align_corners=True: pixel 0 -> -1, pixel size-1 -> +1.
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=image.device)
    grid = coords * scale - 1.0
    repeated = image.float()[:, None].expand(n, k, c, h, w).reshape(n * k, c, h, w)
    samples = F.grid_sample(repeated, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return (samples.view(n, k, c, h, w) * weights.float()[:, :, None]).sum(dim=1).to(image.dtype)
