"""Jain's generator, the pair discriminator, the 3-D gan3d generator, and the registry's kinds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_trains_from_linear

from emrepair.models.base import channels_last_convs
from emrepair.models import (
    GAN3DConfig,
    GAN3DModel,
    GANConfig,
    GANModel,
    PairDiscriminator,
    get_spec,
    list_models,
    load_model,
    model_kind,
    save_checkpoint,
)
from emrepair.models.discriminator import DiscriminatorConfig

TINY_GAN = GANConfig(filters=8, pre_modules=1, post_modules=1, halo=4)
TINY_3D = GAN3DConfig(filters=4, pre_modules=1, post_modules=1, max_factor=4)


def test_gan_forward_backward_t_conditioned(device: torch.device) -> None:
    torch.manual_seed(0)
    model = GANModel(TINY_GAN).to(device).train()
    a, b = torch.rand(2, 1, 20, 24, device=device), torch.rand(2, 1, 20, 24, device=device)
    t = torch.tensor([0.25, 0.75], device=device)
    assert assert_trains_from_linear(model, a, b, t).shape == (2, 1, 20, 24)
    with torch.no_grad():
        r1 = model(a[:1], b[:1], torch.tensor([0.2], device=device)) - (0.8 * a[:1] + 0.2 * b[:1])
        r2 = model(a[:1], b[:1], torch.tensor([0.8], device=device)) - (0.2 * a[:1] + 0.8 * b[:1])
    assert not torch.allclose(r1, r2, atol=0, rtol=0)


def test_discriminator_scores_pairs(device: torch.device) -> None:
    torch.manual_seed(1)
    disc = PairDiscriminator(DiscriminatorConfig(filters=6)).to(device).train()
    neighbour, section = torch.rand(3, 1, 24, 40, device=device), torch.rand(3, 1, 24, 40, device=device)
    section.requires_grad_(True)
    logits = disc(neighbour, section)
    assert logits.shape == (3, 1)
    F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)).backward()
    assert section.grad is not None and section.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 8 pixels"):
        disc(neighbour[..., :4, :4], section[..., :4, :4])


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_gan3d_keeps_originals_and_inserts_sections(factor: int, device: torch.device) -> None:
    torch.manual_seed(2)
    model = GAN3DModel(TINY_3D).to(device).eval()
    stack = torch.rand(2, 1, 4, 12, 10, device=device)
    with torch.no_grad():
        out = model(stack, factor)
    assert out.shape == (2, 1, 3 * factor + 1, 12, 10)
    assert torch.equal(out[:, :, ::factor], stack)
    linear = F.interpolate(stack, size=out.shape[2:], mode="trilinear", align_corners=True)
    assert (out - linear).abs().max() < 0.05  # a fresh model is close to linear interpolation along z


def test_gan3d_backward_and_bad_inputs(device: torch.device) -> None:
    torch.manual_seed(3)
    model = GAN3DModel(TINY_3D).to(device).train()
    stack = torch.rand(1, 1, 3, 8, 8, device=device)
    out = model(stack, 2)
    out.square().mean().backward()
    assert model.upsample["2"].weight.grad is not None and model.stem.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="factor must be one of"):
        model(stack, 5)
    with pytest.raises(ValueError, match="at least 2 sections"):
        model(stack[:, :, :1], 2)
    with pytest.raises(ValueError, match="shape"):
        model(stack[:, 0], 2)


def test_registry_kinds() -> None:
    names = {spec.name: spec.kind for spec in list_models(kind=None)}
    assert names["tsain"] == "interpolation" and names["gan"] == "interpolation"
    assert names["gan3d"] == "volume" and names["sff"] == "fold"
    assert names["linear"] == names["ssan"] == "interpolation"
    interpolation = [spec.name for spec in list_models()]
    assert "gan3d" not in interpolation and "sff" not in interpolation and "gan" in interpolation
    assert [spec.name for spec in list_models("fold")] == ["sff"]
    assert get_spec("gan3d").learned and get_spec("sff").weights_filename == "sff.pt"
    model, _ = load_model("gan3d", allow_random=True)
    assert model_kind(model) == "volume" and model_kind(GANModel(TINY_GAN)) == "interpolation"
    with pytest.raises(ValueError, match="kind"):
        list_models("video")


def test_gan_and_gan3d_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(4)
    gan, g3 = GANModel(TINY_GAN).eval(), GAN3DModel(TINY_3D).eval()
    loaded_gan, meta = load_model(save_checkpoint(tmp_path / "g.pt", gan, TINY_GAN))
    loaded_3d, meta3 = load_model(save_checkpoint(tmp_path / "g3.pt", g3, TINY_3D))
    a, b, t = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), torch.tensor([0.4])
    stack = torch.rand(1, 1, 3, 8, 8)
    channels_last_convs(gan)  # load_model stores 2-D conv weights channels-last on the CPU; same layout, same bits
    with torch.no_grad():
        assert torch.equal(gan(a, b, t), loaded_gan(a, b, t))
        assert torch.equal(g3(stack, 3), loaded_3d(stack, 3))
    assert meta.name == "gan" and meta3.name == "gan3d" and meta3.config["max_factor"] == 4
