"""Modulated deformable convolution (pure PyTorch vs a slow reference, conv2d, torchvision) and TSAIN."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_trains_from_linear

from emrepair.models import TSAINConfig, TSAINModel, load_model, save_checkpoint
from emrepair.models.deform_conv import (
    ModulatedDeformConv2d,
    deform_conv2d_torch,
    modulated_deform_conv2d,
    torchvision_available,
)

TINY = TSAINConfig(channels=8, downsample=2, extract_blocks=1, recon_blocks=1, offset_groups=2,
                   rsab_blocks=1, drb_blocks=1, halo=8)


def bilinear_zero(img: torch.Tensor, y: float, x: float) -> float:
    """Bilinear read of a (H, W) image with zeros outside (the DCN convention)."""
    h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    value = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                value += wy * wx * float(img[yy, xx])
    return value


def slow_deform_conv(x, offset, weight, bias, mask, stride, pad, dil) -> torch.Tensor:
    """Loops over outputs and kernel taps: the definition of DCNv2 in torchvision's layout."""
    b, c, h, w = x.shape
    c_out, c_in_g, kh, kw = weight.shape
    groups, k = c // c_in_g, kh * kw
    ho = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    g = offset.shape[1] // (2 * k)
    out = torch.zeros(b, c_out, ho, wo, dtype=torch.float64)
    for n in range(b):
        for o in range(c_out):
            group = o // (c_out // groups)
            for i in range(ho):
                for j in range(wo):
                    total = float(bias[o])
                    for ci in range(c_in_g):
                        ch = group * c_in_g + ci
                        og = ch // (c // g)
                        for tap in range(k):
                            ky, kx = divmod(tap, kw)
                            dy = float(offset[n, og * 2 * k + 2 * tap, i, j])
                            dx = float(offset[n, og * 2 * k + 2 * tap + 1, i, j])
                            m = float(mask[n, og * k + tap, i, j])
                            y = i * stride - pad + ky * dil + dy
                            xx = j * stride - pad + kx * dil + dx
                            total += float(weight[o, ci, ky, kx]) * m * bilinear_zero(x[n, ch], y, xx)
                    out[n, o, i, j] = total
    return out


@pytest.mark.parametrize("stride,pad,dil,groups,offset_groups", [(1, 1, 1, 1, 1), (2, 1, 1, 2, 2), (1, 2, 2, 1, 4)])
def test_pure_deform_conv_matches_slow_reference(stride: int, pad: int, dil: int, groups: int,
                                                 offset_groups: int) -> None:
    torch.manual_seed(stride + dil + groups)
    x = torch.rand(2, 4, 7, 6)
    weight = torch.randn(4, 4 // groups, 3, 3)
    bias = torch.randn(4)
    ho = (7 + 2 * pad - dil * 2 - 1) // stride + 1
    wo = (6 + 2 * pad - dil * 2 - 1) // stride + 1
    offset = torch.randn(2, 2 * offset_groups * 9, ho, wo) * 2.5  # many reads fall outside the image
    mask = torch.rand(2, offset_groups * 9, ho, wo)
    fast = deform_conv2d_torch(x, offset, weight, bias, mask, stride, pad, dil)
    slow = slow_deform_conv(x, offset, weight, bias, mask, stride, pad, dil)
    assert torch.allclose(fast.double(), slow, atol=1e-4)


@pytest.mark.parametrize("stride,pad,dil,groups", [(1, 1, 1, 1), (2, 0, 1, 2), (1, 2, 2, 4)])
def test_zero_offsets_and_unit_mask_are_a_plain_convolution(stride: int, pad: int, dil: int, groups: int,
                                                            device: torch.device) -> None:
    torch.manual_seed(1)
    x = torch.rand(2, 8, 13, 11, device=device)
    weight = torch.randn(8, 8 // groups, 3, 3, device=device)
    bias = torch.randn(8, device=device)
    expected = F.conv2d(x, weight, bias, stride=stride, padding=pad, dilation=dil, groups=groups)
    ho, wo = expected.shape[-2:]
    offset = torch.zeros(2, 2 * 2 * 9, ho, wo, device=device)
    mask = torch.ones(2, 2 * 9, ho, wo, device=device)
    out = deform_conv2d_torch(x, offset, weight, bias, mask, stride, pad, dil)
    assert torch.allclose(out, expected, atol=1e-4)
    assert torch.allclose(deform_conv2d_torch(x, offset, weight, bias, None, stride, pad, dil), expected, atol=1e-4)


def test_integer_offsets_shift_the_input() -> None:
    x = torch.rand(1, 1, 9, 9)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0  # the centre tap only
    offset = torch.zeros(1, 18, 9, 9)
    offset[:, 2 * 4] = 1.0   # centre tap dy = +1
    offset[:, 2 * 4 + 1] = -2.0  # centre tap dx = -2
    out = deform_conv2d_torch(x, offset, weight, None, None, 1, 1, 1)
    assert torch.allclose(out[0, 0, :8, 2:], x[0, 0, 1:, :7], atol=1e-6)
    assert (out[0, 0, 8] == 0).all() and (out[0, 0, :, :2] == 0).all()  # reads outside are zero


@pytest.mark.skipif(not torchvision_available(), reason="torchvision is not installed (optional extra)")
def test_pure_deform_conv_matches_torchvision() -> None:
    torch.manual_seed(2)
    x = torch.rand(2, 8, 12, 10)
    weight, bias = torch.randn(6, 4, 3, 3), torch.randn(6)
    offset, mask = torch.randn(2, 2 * 2 * 9, 12, 10) * 3, torch.rand(2, 2 * 9, 12, 10)
    ours = modulated_deform_conv2d(x, offset, weight[:, :4], bias, mask, padding=1, backend="torch")
    theirs = modulated_deform_conv2d(x, offset, weight[:, :4], bias, mask, padding=1, backend="torchvision")
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_deform_conv_gradients_reach_offsets_mask_and_input() -> None:
    torch.manual_seed(3)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    offset = (torch.rand(1, 18, 6, 6, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)  # off the pixel grid
    mask = torch.rand(1, 9, 6, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    out = deform_conv2d_torch(x, offset, weight, None, mask, 1, 1, 1)
    out.square().sum().backward()
    for tensor in (x, offset, mask):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_deform_layer_starts_as_half_masked_convolution() -> None:
    torch.manual_seed(4)
    layer = ModulatedDeformConv2d(4, 4, 3, kernel_size=3, offset_groups=2)
    x, cond = torch.rand(1, 4, 8, 8), torch.rand(1, 3, 8, 8)
    expected = F.conv2d(x, layer.weight * 0.5, layer.bias, padding=1)  # zero offsets, mask sigmoid(0)
    assert torch.allclose(layer(x, cond), expected, atol=1e-5)


@pytest.mark.skipif(torchvision_available(), reason="torchvision is installed")
def test_torchvision_backend_without_torchvision_is_a_clear_error() -> None:
    x, weight = torch.rand(1, 2, 5, 5), torch.rand(2, 2, 3, 3)
    with pytest.raises(ValueError, match="torchvision is not installed"):
        modulated_deform_conv2d(x, torch.zeros(1, 18, 3, 3), weight, backend="torchvision")


def test_tsain_forward_backward_and_near_linear_start(device: torch.device) -> None:
    torch.manual_seed(0)
    model = TSAINModel(TINY).to(device).train()
    a, b = torch.rand(2, 1, 32, 32, device=device), torch.rand(2, 1, 32, 32, device=device)
    t = torch.tensor([0.3, 0.6], device=device)
    assert assert_trains_from_linear(model, a, b, t).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(a[..., :30, :30], b[..., :30, :30], t)


def test_tsain_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = TSAINModel(TINY).eval()
    path = save_checkpoint(tmp_path / "tsain.pt", model, TINY, {"trained_on": "test"})
    loaded, meta = load_model(path)
    a, b, t = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), torch.tensor([0.5])
    saved, back = model.state_dict(), loaded.state_dict()
    assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved)
    with torch.no_grad():  # the same weights; kernels may pick another summation order for another memory layout
        torch.testing.assert_close(model(a, b, t), loaded(a, b, t), rtol=0, atol=1e-6)
    assert meta.name == "tsain" and meta.config["channels"] == 8
