"""The fold repair model: shapes, gradients, pixels kept far from the band, composition weight, warping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emrepair.models import SFFConfig, SFFModel, load_model, save_checkpoint
from emrepair.models.fold_blend import near_band_weight, relight_band
from emrepair.models.warp import warp_by_flow
from emrepair.training.fold_data import inverse_displacement

TINY = SFFConfig(unfold_channels=4, fusion_channels=4, levels=2, reach=6, transition=3, halo=4, contrast_channels=0)


def band_inputs(device: torch.device, size: int = 40) -> tuple[torch.Tensor, ...]:
    """Random folded/left/right sections and a horizontal band across rows 18..21."""
    gen = torch.Generator().manual_seed(0)
    folded, left, right = (torch.rand(2, 1, size, size, generator=gen).to(device) for _ in range(3))
    band = torch.zeros(2, 1, size, size, dtype=torch.bool, device=device)
    band[:, :, 18:22] = True
    return folded, left, right, band


def scramble(model: SFFModel) -> None:
    """Give every parameter sizeable random values so the networks do something."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)


def test_sff_forward_backward(device: torch.device) -> None:
    torch.manual_seed(0)
    model = SFFModel(TINY).to(device).train()
    folded, left, right, band = band_inputs(device)
    folded.requires_grad_(True)
    out = model(folded, left, right, band)
    assert out.shape == folded.shape and torch.isfinite(out).all()
    out.square().mean().backward()
    assert folded.grad is not None and folded.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_sff_keeps_far_pixels_bit_identical_and_changes_the_band(device: torch.device) -> None:
    torch.manual_seed(1)
    model = SFFModel(TINY).to(device)
    scramble(model)
    model.eval()
    folded, left, right, band = band_inputs(device)
    with torch.no_grad():
        out = model(folded, left, right, band)
    far = torch.ones_like(band)
    far[:, :, 18 - 6 - 3:22 + 6 + 3] = False  # farther than reach + transition rows from the band
    assert torch.equal(out[far], folded[far])
    assert not torch.allclose(out[band], folded[band])


def test_fresh_sff_fills_the_band_from_the_neighbours() -> None:
    model = SFFModel(TINY).eval()
    folded, left, right, band = band_inputs(torch.device("cpu"))
    with torch.no_grad():
        out = model(folded, left, right, band)
    fill = 0.5 * (left + right)
    assert (out[band] - fill[band]).abs().mean() < 0.02  # fusion prior: interpolated on the band
    off = ~band
    assert (out[off] - folded[off]).abs().mean() < 0.02  # and the (barely moved) folded section elsewhere


def test_sff_rejects_bad_inputs() -> None:
    model = SFFModel(TINY)
    folded, left, right, band = band_inputs(torch.device("cpu"))
    with pytest.raises(ValueError, match="band_mask"):
        model(folded, left, right, band[:, :, :20])
    with pytest.raises(ValueError, match="multiples of 2"):
        model(folded[..., :39, :39], left[..., :39, :39], right[..., :39, :39], band[..., :39, :39])
    with pytest.raises(ValueError, match="floating-point"):
        model(folded, left, (right * 255).to(torch.uint8), band)


def test_near_band_weight_profile() -> None:
    band = torch.zeros(1, 1, 1, 60)
    band[..., 30] = 1.0
    band = band.expand(1, 1, 60, 60).clone()
    w = near_band_weight(band, reach=8, transition=4)[0, 0, 30]  # across the band at x = 30
    assert torch.all(w[30 - 4:30 + 5] == 1.0)  # within reach - transition
    assert torch.all(w[:30 - 12] == 0) and torch.all(w[30 + 13:] == 0)  # exactly zero beyond reach + transition
    assert torch.all(w[30 - 12:30 - 4] > 0) and torch.all(w[30 - 12:30 - 3].diff() > 0)  # a ramp up to the band
    assert torch.allclose(w, w.flip(0).roll(1))  # symmetric about the band


def test_warp_by_flow_shifts_and_unfolds() -> None:
    image = torch.rand(1, 1, 16, 16)
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0], flow[:, 1] = 2.0, -1.0
    out = warp_by_flow(image, flow)
    assert torch.allclose(out[0, 0, :14, 1:], image[0, 0, 2:, :15], atol=1e-6)
    # the inverse of a smooth displacement undoes it
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    disp = np.stack([1.5 * np.sin(xx / 9.0), 1.0 * np.cos(yy / 7.0)]).astype(np.float32)
    inv = inverse_displacement(disp)
    composed = warp_by_flow(torch.from_numpy(disp)[None], torch.from_numpy(inv)[None])[0].numpy() + inv
    assert np.abs(composed[:, 4:-4, 4:-4]).max() < 0.02  # d(p + u(p)) + u(p) = 0


def test_sff_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = SFFModel(TINY)
    scramble(model)
    model.eval()
    loaded, meta = load_model(save_checkpoint(tmp_path / "sff.pt", model, TINY, {"trained_on": "test"}))
    folded, left, right, band = band_inputs(torch.device("cpu"))
    with torch.no_grad():
        assert torch.equal(model(folded, left, right, band), loaded(folded, left, right, band))
    assert meta.name == "sff" and loaded.kind == "fold" and meta.config["reach"] == 6


def test_band_running_off_the_section_keeps_full_weight_at_the_border() -> None:
    band = torch.zeros(1, 1, 40, 40)
    band[..., 20:23, :] = 1.0  # a horizontal band from the left border to the right border
    w = near_band_weight(band, reach=8, transition=4)
    assert torch.all(w[band > 0] == 1.0)


def test_relight_band_restores_a_darkened_copy() -> None:
    gen = torch.Generator().manual_seed(3)
    clean = 0.3 + 0.4 * torch.rand(1, 1, 32, 32, generator=gen)
    band = torch.zeros(1, 1, 32, 32)
    band[..., 10:20, :] = 1.0
    folded = torch.where(band > 0, clean * 0.1, clean)  # a fold keeping 10 % of the signal
    relit = relight_band(folded, clean, band, radius=4)
    assert torch.allclose(relit[band > 0], clean[band > 0], atol=1e-4)
    assert torch.equal(relit[band == 0], folded[band == 0])


def test_learned_stage1_weights_load_into_sff(tmp_path: Path) -> None:
    from emrepair.errors import UsageError
    from emrepair.models import FlowUNetConfig, FlowUNetModel, save_checkpoint
    from emrepair.training.fold_data import split_fold_sections
    from emrepair.training.sff import load_interpolator_weights

    torch.manual_seed(0)
    trained = FlowUNetModel()
    path = save_checkpoint(tmp_path / "fu.pt", trained, FlowUNetConfig(), {})
    model = SFFModel(SFFConfig(interpolator="flowunet"))
    assert model.size_multiple == 8
    load_interpolator_weights(model, path)
    assert all(torch.equal(p, q) for p, q in zip(model.interpolator.state_dict().values(),
                                                  trained.state_dict().values()))
    with pytest.raises(UsageError, match="not 'linear'"):
        load_interpolator_weights(SFFModel(), path)
    # the fold split keeps every section of a training triplet out of the held-out z % 5 == 2 set
    train, val = split_fold_sections(30, 1)
    assert val == [2, 7, 12, 17, 22, 27]
    assert all((z + d) % 5 != 2 for z in train for d in (-1, 0, 1))
