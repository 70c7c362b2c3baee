"""emrepair train: triplet sampling, losses, checkpoints, resume, init, curves, VGG fallback."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emrepair.errors import UsageError
from emrepair.models import load_model, read_checkpoint
from emrepair.training import TrainConfig, curves_path, state_path, train
from emrepair.training.loop import build_model
from emrepair.training.losses import PerceptualStyleLoss, VGG16Features, charbonnier
from emrepair.training.sampling import TripletSampler, draw_triplet, validation_triplets
from emrepair.training.stacks import open_training_stack
from test_eval import write_shifted_stack  # tests/ is on sys.path (no __init__.py, rootdir conftest)

TINY = {"base_channels": 4, "channels": 8, "downsample": 2, "rdb_blocks": 1, "rdb_layers": 1, "growth": 4,
        "block": 4, "inner_block": 2, "qk_reduction": 4, "halo": 8}   # size_multiple 16


@pytest.fixture
def stack_path(tmp_path: Path) -> Path:
    write_shifted_stack(tmp_path / "s.h5", depth=12)
    return tmp_path / "s.h5"


@pytest.fixture(autouse=True)
def no_vgg_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the torch hub cache at an empty folder so no real VGG16 weights are found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def config(stack: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(inputs=[str(stack)], output=str(out), model="ssan", steps=3, batch_size=2, patch_size=32,
                device="cpu", val_every=2, detect=False, model_options=dict(TINY))
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_triplets_use_training_sections_only(stack_path: Path) -> None:
    stack = open_training_stack(str(stack_path), detect=False)
    assert stack.preloaded and stack.val_z == [2, 7] and not stack.isotropic
    rng = np.random.default_rng(0)
    for _ in range(200):
        tri = draw_triplet([stack], rng)
        assert tri.a < tri.target < tri.b and tri.b - tri.a <= 4
        assert tri.t == pytest.approx((tri.target - tri.a) / (tri.b - tri.a))
        assert {tri.a, tri.b, tri.target} <= set(stack.train_z)
    assert [(v.a, v.target, v.b) for v in validation_triplets([stack])] == [(1, 2, 3), (6, 7, 8)]
    a, b, target, t = TripletSampler([stack], 32, seed=1).batch(3)
    assert a.shape == b.shape == target.shape == (3, 1, 32, 32) and t.shape == (3,)
    assert a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0 and ((0 < t) & (t < 1)).all()


def test_isotropic_stacks_use_decimated_neighbours(tmp_path: Path) -> None:
    write_shifted_stack(tmp_path / "fib.h5", depth=40, side=48, step=1, voxel_size=(10.0, 10.0, 10.0))
    stack = open_training_stack(str(tmp_path / "fib.h5"), detect=False)
    assert stack.isotropic
    rng = np.random.default_rng(0)
    triplets = [draw_triplet([stack], rng) for _ in range(200)]
    steps = {(t.target - t.a) for t in triplets}    # neighbours 1 (upsample-z) to 5 sections per gap step
    assert min(t.b - t.a for t in triplets) >= 2 and max(t.b - t.a for t in triplets) > 8
    assert 1 in steps and any(s % 5 == 0 for s in steps)
    assert all(v.b - v.a == 8 for v in validation_triplets([stack]))
    # a stack smaller than the patch is reflect-padded to it
    crops = TripletSampler([stack], 64, seed=0).batch(1)
    assert crops[0].shape == (1, 1, 64, 64)


def test_train_writes_loadable_checkpoint_meta_and_curves(stack_path: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    steps_seen: list[int] = []
    out = tmp_path / "mine.pt"
    result = train(config(stack_path, out), progress=lambda s, n, info: steps_seen.append(s), message=messages.append)
    assert steps_seen == [1, 2, 3] and result.steps == 3
    assert any("VGG16 ImageNet weights not found" in m for m in messages) and result.loss == "charbonnier"
    model, meta = load_model(out)
    assert model.name == "ssan" and meta.trained_on == "s.h5" and meta.config["channels"] == 8
    saved = read_checkpoint(out)["meta"]
    assert set(saved) >= {"trained_on", "training_data", "steps", "metrics", "config", "date", "hardware"}
    assert saved["metrics"]["val_sections"] == 2 and "linear_psnr" in saved["metrics"]
    assert saved["training_data"][0]["val_sections"] == [2, 7] and saved["hardware"]["device"] == "cpu"
    picture = cv2.imread(str(curves_path(out)))
    assert picture is not None and picture.shape[0] > 100
    assert state_path(out).is_file()


def test_resume_continues_step_count(stack_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine.pt"
    train(config(stack_path, out, steps=2))
    messages: list[str] = []
    steps_seen: list[int] = []
    result = train(config(stack_path, out, steps=4, resume=True), message=messages.append,
                   progress=lambda s, n, info: steps_seen.append(s))
    assert steps_seen == [3, 4] and result.steps == 4
    assert any("resuming at step 2" in m for m in messages)
    state = torch.load(state_path(out), weights_only=True)
    assert state["step"] == 4 and state["history"]["loss_steps"] == [1, 2, 3, 4]
    with pytest.raises(UsageError, match="resume"):
        train(config(stack_path, out, steps=6, resume=True, model_options={**TINY, "channels": 16}))


def test_init_loads_weights(stack_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine.pt"
    train(config(stack_path, out, steps=1))
    model, _ = build_model(config(stack_path, tmp_path / "next.pt", init=str(out)), lambda m: None)
    saved = read_checkpoint(out)["state_dict"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    result = train(config(stack_path, tmp_path / "next.pt", steps=1, init=str(out)))
    assert load_model(result.output)[0].config.channels == 8


def test_vgg_weights_file_enables_perceptual_style_loss(stack_path: Path, tmp_path: Path) -> None:
    vgg = VGG16Features()
    torch.save({f"features.{k}": v for k, v in vgg.layers.state_dict().items()}, tmp_path / "vgg.pth")
    loaded = VGG16Features.from_file(tmp_path / "vgg.pth")
    x = torch.rand(2, 1, 32, 32)
    terms = PerceptualStyleLoss(loaded)(x.clone().requires_grad_(), x, torch.rand_like(x), torch.rand_like(x))
    assert set(terms) == {"total", "pixel", "feature", "style"} and torch.isfinite(terms["total"])
    result = train(config(stack_path, tmp_path / "v.pt", steps=1, vgg_weights=str(tmp_path / "vgg.pth")))
    assert "VGG16" in result.loss


def test_charbonnier_and_bad_settings(stack_path: Path, tmp_path: Path) -> None:
    x = torch.zeros(1, 1, 4, 4)
    assert charbonnier(x + 0.5, x).item() == pytest.approx(0.5, abs=1e-5)
    with pytest.raises(ValueError):
        charbonnier(x, torch.zeros(1, 1, 4, 5))
    with pytest.raises(UsageError, match="exactly one"):
        train(config(stack_path, tmp_path / "x.pt", epochs=1))
    with pytest.raises(UsageError, match="no weights to train"):
        train(config(stack_path, tmp_path / "x.pt", model="linear"))
    messages: list[str] = []
    train(config(stack_path, tmp_path / "x.pt", steps=1, patch_size=24), message=messages.append)
    assert any("using 32" in m for m in messages)


def test_mse_pixel_loss(stack_path: Path, tmp_path: Path) -> None:
    from emrepair.training.losses import mse

    x = torch.zeros(1, 1, 4, 4)
    assert mse(x + 0.5, x).item() == pytest.approx(0.25)
    result = train(config(stack_path, tmp_path / "m.pt", steps=1, pixel_loss="mse"))
    assert result.loss == "mse"
    with pytest.raises(UsageError, match="--pixel-loss"):
        train(config(stack_path, tmp_path / "m.pt", pixel_loss="l3"))


def test_train_cli(stack_path: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from emrepair.cli.commands_train import train_command

    app = typer.Typer()
    app.command("train")(train_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "cli.pt"
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    args = ["train", str(stack_path), "-o", str(out), "--model", "ssan", "--steps", "2", "--batch-size", "2",
            "--patch-size", "32", "--device", "cpu", "--no-progress", *sets]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "VGG16" in result.output and out.is_file()
    bad = CliRunner().invoke(app, ["train", str(stack_path), "-o", str(out), "--set", "nonsense"])
    assert bad.exit_code == 2 and "FIELD=VALUE" in bad.output
    # without --model the default model of fix is trained
    plain = tmp_path / "plain.pt"
    result = CliRunner().invoke(app, ["train", str(stack_path), "-o", str(plain), "--steps", "1", "--batch-size", "1",
                                      "--patch-size", "32", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert read_checkpoint(plain)["model"] == "flowunet"
