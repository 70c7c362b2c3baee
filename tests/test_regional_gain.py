"""Stage 0 of sff: the regional contrast correction, its place in the model and its training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emrepair.engine.fold_repair import repair_fold_section
from emrepair.errors import InputError, UsageError
from emrepair.models import SFFConfig, SFFModel, save_checkpoint
from emrepair.models.regional_gain import RegionalGain, RegionalGainConfig, apply_gain

SMALL = SFFConfig(unfold_channels=4, fusion_channels=4, levels=2, reach=6, transition=3, halo=4,
                  contrast_channels=4, contrast_factor=2)


def test_fresh_gain_is_exactly_zero_for_any_size(device: torch.device) -> None:
    net = RegionalGain(RegionalGainConfig(channels=4, factor=4)).to(device).eval()
    for h, w in ((37, 53), (64, 64)):
        x = torch.rand(2, 1, h, w, device=device)
        with torch.no_grad():
            log_gain = net(x, torch.rand_like(x), torch.zeros_like(x))
        assert log_gain.shape == x.shape and torch.equal(log_gain, torch.zeros_like(x))
        assert torch.equal(apply_gain(x, log_gain), x)


def test_gain_forward_backward_and_deadzone(device: torch.device) -> None:
    torch.manual_seed(0)
    net = RegionalGain(RegionalGainConfig(channels=4, factor=1, levels=2, deadzone=0.3)).to(device).train()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    x = torch.rand(1, 1, 24, 24, device=device)
    log_gain = net(x, torch.rand_like(x), torch.zeros_like(x))
    log_gain.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    net.eval()
    with torch.no_grad():
        g = net(x, torch.rand_like(x), torch.zeros_like(x))
    assert torch.all((g == 0) | (g.abs() > 0.3)) and g.abs().max() <= net.config.max_log_gain
    with pytest.raises(ValueError):
        RegionalGainConfig(deadzone=-1.0)


def test_sff_rescales_far_pixels_only_through_stage_0() -> None:
    torch.manual_seed(1)
    model = SFFModel(SMALL)
    with torch.no_grad():
        for p in model.contrast.parameters():
            p.normal_(0, 0.3)
    model.eval()
    gen = np.random.default_rng(0)
    folded, left, right = (gen.random((48, 64), dtype=np.float32) for _ in range(3))
    band = np.zeros((48, 64), bool)
    band[20:24] = True
    result = repair_fold_section(model, folded, left, right, band)
    parts = model.parts(*(torch.from_numpy(x.astype(np.float32))[None, None] for x in (folded, left, right, band)))
    corrected = parts.corrected[0, 0].detach().numpy()
    far = np.ones_like(band)
    far[20 - 9:24 + 9] = False
    assert np.allclose(result.image[far], corrected[far], atol=1e-6)
    rescaled = far & (parts.log_gain[0, 0].detach().numpy() != 0)
    assert rescaled.any() and result.changed[rescaled].all()
    assert np.array_equal(result.image[far & ~rescaled], folded[far & ~rescaled])


def test_an_sff_checkpoint_without_stage_0_loads_for_contrast_training(tmp_path: Path) -> None:
    from emrepair.training.sff import load_sff_checkpoint

    model = SFFModel(SMALL)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("contrast.")}
    blob = {"model": "sff", "config": {k: v for k, v in vars(SMALL).items() if not k.startswith("contrast")},
            "state_dict": state, "meta": {}}
    torch.save(blob, tmp_path / "old.pt")
    loaded, _ = load_sff_checkpoint(tmp_path / "old.pt")
    assert loaded.config.contrast_channels == 16
    torch.save({**blob, "model": "flowunet"}, tmp_path / "other.pt")
    with pytest.raises(UsageError, match="not sff"):
        load_sff_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_sff_checkpoint(tmp_path / "junk.pt")


def test_contrast_training_runs_and_saves(shared_data: Path, tmp_path: Path) -> None:
    from emrepair.models import load_model
    from emrepair.training.contrast import ContrastTrainConfig, train_contrast

    init = save_checkpoint(tmp_path / "sff.pt", SFFModel(SMALL), SMALL, {"trained_on": "test"})
    config = ContrastTrainConfig(crop=64, batch_size=2, steps=2, val_examples=2)
    summary = train_contrast(shared_data, init, tmp_path / "out.pt", config)
    assert summary["steps"] == 2 and set(summary["validation"]) == {"folded_psnr", "corrected_psnr"}
    loaded, _ = load_model(tmp_path / "out.pt")
    blob = torch.load(tmp_path / "out.pt", weights_only=True)
    assert blob["meta"]["contrast_training"]["steps"] == 2 and loaded.config.contrast_factor == 2
    train_contrast(shared_data, tmp_path / "out.pt", tmp_path / "again.pt", ContrastTrainConfig(
        crop=64, batch_size=2, steps=1, val_examples=2))
    again = torch.load(tmp_path / "again.pt", weights_only=True)["meta"]["contrast_training"]
    assert again["steps"] == 1 and [run["steps"] for run in again["earlier_runs"]] == [2]


def test_fold_training_continues_from_a_checkpoint_and_keeps_stage_0(shared_data: Path, tmp_path: Path) -> None:
    from emrepair.training.sff import (
        FoldTrainConfig,
        load_sff_checkpoint,
        train_sff,
    )

    torch.manual_seed(3)
    model = SFFModel(SMALL)
    with torch.no_grad():
        for p in model.contrast.parameters():
            p.normal_(0, 0.1)
    init = save_checkpoint(tmp_path / "sff.pt", model, SMALL, {"steps": 5, "contrast_training": {"steps": 7}})
    summary = train_sff(shared_data, tmp_path / "more.pt", FoldTrainConfig(crop=64, batch_size=2, steps=1,
                                                                           val_examples=2), init=init)
    assert summary["steps"] == 1 and summary["contrast_training"] == {"steps": 7}
    assert summary["earlier_runs"][0]["steps"] == 5
    again, _ = load_sff_checkpoint(tmp_path / "more.pt")
    assert again.config == SMALL
    assert all(torch.equal(p, q) for p, q in zip(again.contrast.parameters(), model.contrast.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(again.fusion.parameters(), model.fusion.parameters()))

