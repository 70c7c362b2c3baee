"""emrepair train --model gan: Jain et al.'s adversarial term, its discriminator, checkpoint and resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from emrepair.errors import UsageError
from emrepair.models import load_model, read_checkpoint
from emrepair.training import TrainConfig, state_path, train
from emrepair.training.adversarial import AdversarialConfig, AdversarialTrainer
from emrepair.training.loop import build_adversary
from helpers import smooth_stack, write_h5

TINY_GAN = {"filters": 4, "pre_modules": 1, "post_modules": 1, "halo": 4}
TINY_SSAN = {"base_channels": 4, "channels": 8, "downsample": 2, "rdb_blocks": 1, "rdb_layers": 1, "growth": 4,
             "block": 4, "inner_block": 2, "qk_reduction": 4, "halo": 8}
TINY_D = {"filters": 4, "grid": 2, "dropout": 0.0}


@pytest.fixture
def stack_path(tmp_path: Path) -> Path:
    return Path(write_h5(tmp_path / "s.h5", smooth_stack(depth=12, size=48)))


@pytest.fixture(autouse=True)
def no_vgg_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the torch hub cache at an empty folder so no real VGG16 weights are found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is faster than several contending for a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(stack: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(inputs=[str(stack)], output=str(out), model="gan", steps=3, batch_size=2, patch_size=32,
                device="cpu", val_every=2, detect=False, model_options=dict(TINY_GAN),
                adversarial_options={"warmup": 1, "discriminator": dict(TINY_D)})
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_discriminator_learns_real_from_fake() -> None:
    torch.manual_seed(0)
    trainer = AdversarialTrainer(AdversarialConfig(lr=3e-3, discriminator=dict(TINY_D)))
    yy = torch.linspace(0, 6.28, 32)
    real = (0.5 + 0.4 * torch.sin(yy[:, None] + yy[None, :] + torch.rand(4, 1, 1, 1) * 6)).clamp(0, 1)
    a, b, target = real, real.roll(1, -1), real.roll(2, -1)
    fake = torch.rand_like(target)          # uncorrelated noise: obviously not a neighbouring section
    losses = [trainer.discriminator_step(a, b, target, fake) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]
    trainer.discriminator.eval()
    with torch.no_grad():
        assert trainer._logits(a, b, target).min() > trainer._logits(a, b, fake).max()
    # the generator's loss reaches the prediction only, and is larger for the fake than for the real
    pred = fake.clone().requires_grad_()
    trainer.optimizer.zero_grad(set_to_none=True)
    g = trainer.generator_loss(a, b, pred)
    g.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in trainer.discriminator.parameters())
    assert g.item() > trainer.generator_loss(a, b, target).item()


def test_gan_run_writes_generator_checkpoint_and_resumes_discriminator(stack_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "gan.pt"
    seen: list[dict[str, float]] = []
    result = train(config(stack_path, out, steps=2), progress=lambda s, n, info: seen.append(info))
    assert "adversarial" in result.loss and {"d_loss", "adv"} <= set(seen[-1])
    model, meta = load_model(out)
    checkpoint = read_checkpoint(out)
    assert model.name == "gan" and meta.config["filters"] == 4 and "adversarial" in checkpoint["meta"]["config"]["loss"]
    assert set(checkpoint["state_dict"]) == set(model.state_dict())     # the generator only
    saved = torch.load(state_path(out), weights_only=True)
    history = saved["history"]
    assert len(history["d_losses"]) == 2 and history["adv_losses"][0] == 0.0 and history["adv_losses"][1] > 0

    # --resume loads the saved discriminator and its optimizer before continuing
    loaded: list[dict[str, torch.Tensor]] = []
    original = AdversarialTrainer.load_state_dict

    def spy(self: AdversarialTrainer, state: dict) -> None:
        original(self, state)
        loaded.append({k: v.clone() for k, v in self.discriminator.state_dict().items()})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AdversarialTrainer, "load_state_dict", spy)
        messages: list[str] = []
        train(config(stack_path, out, steps=3, resume=True), message=messages.append)
    assert any("resuming at step 2" in m for m in messages) and len(loaded) == 1
    assert all(torch.equal(v, saved["adversarial"]["discriminator"][k]) for k, v in loaded[0].items())
    resumed = torch.load(state_path(out), weights_only=True)
    assert resumed["step"] == 3 and len(resumed["history"]["d_losses"]) == 3
    assert resumed["adversarial"]["optimizer"]["state"][0]["step"] == 3   # Adam continued, not restarted
    assert any(not torch.equal(v, saved["adversarial"]["discriminator"][k])
               for k, v in resumed["adversarial"]["discriminator"].items())


def test_only_gan_builds_a_discriminator_by_default(stack_path: Path, tmp_path: Path) -> None:
    device = torch.device("cpu")
    assert build_adversary(config(stack_path, tmp_path / "x.pt", model="ssan"), "ssan", device) is None
    assert build_adversary(config(stack_path, tmp_path / "x.pt", adversarial=False), "gan", device) is None
    assert build_adversary(config(stack_path, tmp_path / "x.pt", adversarial=True), "dan", device) is not None
    with pytest.raises(UsageError, match="adversarial settings"):
        build_adversary(config(stack_path, tmp_path / "x.pt", adversarial_options={"nonsense": 1}), "gan", device)
    out = tmp_path / "ssan.pt"
    result = train(config(stack_path, out, model="ssan", model_options=dict(TINY_SSAN), steps=1))
    assert "adversarial" not in result.loss
    state = torch.load(state_path(out), weights_only=True)
    assert "adversarial" not in state and state["history"]["d_losses"] == []
