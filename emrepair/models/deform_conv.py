"""Modulated deformable convolution (DCNv2, Zhu et al. 2019) in pure PyTorch, with an optional
torchvision path.

``modulated_deform_conv2d`` follows ``torchvision.ops.deform_conv2d``'s layout exactly: offsets
(B, 2 * offset_groups * kh * kw, Ho, Wo) with (dy, dx) interleaved per kernel tap (taps in row-major
order within each offset group), mask (B, offset_groups * kh * kw, Ho, Wo), weight
(C_out, C_in / groups, kh, kw); samples outside the input read zero. torchvision is used when it
imports (``backend="auto"``); otherwise every tap is sampled bilinearly with ``grid_sample`` and
the taps are contracted with the weights by one (grouped) matrix product.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.base import check_shape

try:  # optional extra: torchvision must match the installed torch exactly, so it is never required
    from torchvision.ops import deform_conv2d as _tv_deform_conv2d
except Exception:  # noqa: BLE001 - a broken torchvision install raises all sorts of errors
    _tv_deform_conv2d = None

BACKENDS = ("auto", "torch", "torchvision")


def torchvision_available() -> bool:
    """Whether ``torchvision.ops.deform_conv2d`` imported."""
    return _tv_deform_conv2d is not None


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                            stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                            dilation: int | tuple[int, int] = 1, backend: str = "auto") -> torch.Tensor:
    """Deformable convolution; with ``mask`` the modulated (v2) form. See the module docstring.

    Args:
        x: (B, C_in, H, W).
        offset: (B, 2 * G * kh * kw, Ho, Wo), G = offset groups (C_in must divide by G).
        weight: (C_out, C_in / groups, kh, kw).
        bias: (C_out,) or None.
        mask: (B, G * kh * kw, Ho, Wo) or None (all ones).
        backend: "auto" (torchvision when available), "torch" or "torchvision".

    Returns:
        (B, C_out, Ho, Wo) in x's dtype (the pure path samples in float32).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torchvision" and _tv_deform_conv2d is None:
        raise ValueError("backend 'torchvision' requested but torchvision is not installed")
    if backend != "torch" and _tv_deform_conv2d is not None:
        # torchvision's kernels lack bfloat16 (and half on the CPU): run them in float32, as the pure path samples
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        out = _tv_deform_conv2d(
            x.to(dtype), offset.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype),
            stride=_pair(stride), padding=_pair(padding), dilation=_pair(dilation),
            mask=None if mask is None else mask.to(dtype))
        return out.to(x.dtype)
    return deform_conv2d_torch(x, offset, weight, bias, mask, stride, padding, dilation)


def deform_conv2d_torch(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                        stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                        dilation: int | tuple[int, int] = 1) -> torch.Tensor:
    """The pure-PyTorch deformable convolution (arguments as :func:`modulated_deform_conv2d`)."""
    dims = check_shape(x, "B,C,H,W", "input")
    b, c, h, w = dims["B"], dims["C"], dims["H"], dims["W"]
    wdims = check_shape(weight, "O,I,kh,kw", "weight")
    c_out, c_in_g, kh, kw = wdims["O"], wdims["I"], wdims["kh"], wdims["kw"]
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    if c % c_in_g or c_out % (c // c_in_g):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {c} input channels into groups")
    groups = c // c_in_g
    k = kh * kw
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    odims = check_shape(offset, "B,O2,Ho,Wo", "offset", B=b, Ho=ho, Wo=wo)
    if odims["O2"] % (2 * k) or c % (odims["O2"] // (2 * k)):
        raise ValueError(f"offset channels {odims['O2']} must be 2 * offset_groups * {k} with "
                         f"offset_groups dividing {c}")
    g = odims["O2"] // (2 * k)
    if mask is not None:
        check_shape(mask, f"B,{g * k},Ho,Wo", "mask", B=b, Ho=ho, Wo=wo)

    dev = x.device
    f32 = torch.float32
    # Base sampling positions of every tap, in the input padded by one zero pixel on each side
    # (so reads just outside the input blend with zero exactly as torchvision's kernel does).
    ys = torch.arange(ho, device=dev, dtype=f32) * sh - ph + 1
    xs = torch.arange(wo, device=dev, dtype=f32) * sw - pw + 1
    tap_y = (torch.arange(kh, device=dev, dtype=f32) * dh).repeat_interleave(kw)
    tap_x = (torch.arange(kw, device=dev, dtype=f32) * dw).repeat(kh)
    off = offset.float().view(b, g, k, 2, ho, wo)
    py = ys.view(1, 1, 1, ho, 1) + tap_y.view(1, 1, k, 1, 1) + off[:, :, :, 0]
    px = xs.view(1, 1, 1, 1, wo) + tap_x.view(1, 1, k, 1, 1) + off[:, :, :, 1]
    padded = F.pad(x.float(), (1, 1, 1, 1))
    # align_corners=True: pixel 0 -> -1, pixel size-1 -> +1; the padded sizes are >= 3
    grid = torch.stack([px * (2.0 / (w + 1)) - 1.0, py * (2.0 / (h + 1)) - 1.0], dim=-1)
    sampled = F.grid_sample(padded.reshape(b * g, c // g, h + 2, w + 2), grid.reshape(b * g, k * ho, wo, 2),
                            mode="bilinear", padding_mode="zeros", align_corners=True)
    sampled = sampled.view(b, g, c // g, k, ho, wo)
    if mask is not None:
        sampled = sampled * mask.float().view(b, g, 1, k, ho, wo)
    columns = sampled.reshape(b, groups, c_in_g * k, ho * wo)
    kernel = weight.float().reshape(groups, c_out // groups, c_in_g * k)
    out = torch.einsum("bgkn,gok->bgon", columns, kernel).reshape(b, c_out, ho, wo)
    if bias is not None:
        out = out + bias.float().view(1, -1, 1, 1)
    return out.to(x.dtype)


class ModulatedDeformConv2d(nn.Module):
    """A deformable convolution layer whose offsets and mask are predicted from a conditioning
    feature map (DCNv2 "pack", as used in EDVR): ``forward(x, cond)``.

    ``cond`` (B, cond_channels, H, W) goes through one 3x3 conv to 3 * G * k * k channels: offsets
    (scaled by ``max_offset * tanh`` when max_offset > 0) and a sigmoid mask. That conv starts at
    zero, so a fresh layer samples the regular grid with mask 0.5.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_channels: int, kernel_size: int = 3,
                 offset_groups: int = 1, groups: int = 1, max_offset: float = 0.0, backend: str = "auto") -> None:
        super().__init__()
        if in_channels % offset_groups or in_channels % groups or out_channels % groups:
            raise ValueError("channels must divide by groups and offset_groups")
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.offset_groups = offset_groups
        self.max_offset = max_offset
        self.backend = backend
        taps = offset_groups * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.offset_mask = nn.Conv2d(cond_channels, 3 * taps, 3, padding=1)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) sampled at offsets predicted from cond (B, cond_channels, H, W)."""
        taps = self.offset_groups * self.kernel_size * self.kernel_size
        out = self.offset_mask(cond)
        offset, mask = out[:, :2 * taps], torch.sigmoid(out[:, 2 * taps:])
        if self.max_offset > 0:
            offset = self.max_offset * torch.tanh(offset / self.max_offset)
        return modulated_deform_conv2d(x, offset, self.weight, self.bias, mask, padding=self.padding,
                                       backend=self.backend)
