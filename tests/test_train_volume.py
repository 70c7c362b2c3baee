"""emrepair train --model gan3d: windows from training sections only, checkpoint, resume, serial-section refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import smooth_stack, write_h5
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.errors import UsageError
from emrepair.models import load_model, read_checkpoint
from emrepair.training import TrainConfig, curves_path, state_path
from emrepair.training.stacks import open_training_stack
from emrepair.training.state import load_state
from emrepair.training.volume import (
    WINDOW,
    WindowSampler,
    hold_out_slab,
    synthesized_loss,
    train_volume,
    validation_windows,
)

TINY = {"filters": 4, "pre_modules": 1, "post_modules": 1, "max_factor": 3, "halo": 4}


@pytest.fixture
def fib(tmp_path: Path) -> str:
    return write_h5(tmp_path / "fib.h5", smooth_stack(depth=30, size=40), resolution=(10.0, 10.0, 10.0))


def config(stack: str, out: Path, **kw: object) -> TrainConfig:
    base = {"inputs": [stack], "output": str(out), "model": "gan3d", "steps": 2, "batch_size": 2,
            "patch_size": 32, "device": "cpu", "val_every": 2, "detect": False, "model_options": dict(TINY)}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_training_windows_never_touch_held_out_sections(fib: str) -> None:
    stack = open_training_stack(fib, detect=False)
    hold_out_slab(stack, max_factor=3)
    assert stack.isotropic and stack.val_z == list(range(24, 30)) and stack.train_z == list(range(24))
    sampler = WindowSampler([stack], 32, [2, 3], seed=0)
    held = set(stack.val_z)
    for _ in range(40):
        inputs, target, f, windows = sampler.batch(2)
        assert inputs.shape == (2, 1, WINDOW, 32, 32) and target.shape == (2, 1, (WINDOW - 1) * f + 1, 32, 32)
        assert (inputs == target[:, :, ::f]).all()
        for w in windows:
            assert not held & set(w.sections) and set(w.sections) <= set(stack.train_z)
    val = validation_windows([stack], [2, 3])
    assert val and all(set(w.kept) <= held for w in val)
    pred = torch.from_numpy(target).clone()
    pred[:, :, ::f] = 0.0  # errors on the inputs do not count
    assert synthesized_loss(pred, torch.from_numpy(target), f) < 1e-2


def test_train_writes_a_gan3d_checkpoint_and_resumes(fib: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []
    original = WindowSampler.batch

    def recording(self: WindowSampler, size: int) -> object:
        out = original(self, size)
        drawn.extend(z for w in out[3] for z in w.sections)
        return out

    monkeypatch.setattr(WindowSampler, "batch", recording)
    out = tmp_path / "g.pt"
    result = train_volume(config(fib, out))
    assert drawn and max(drawn) < 24  # the held-out slab (sections 24-29) is never an input or target
    model, _ = load_model(str(out), device="cpu")
    assert model.name == "gan3d" and model.kind == "volume" and model.config.filters == 4
    assert result.steps == 2 and result.best and "linear_psnr" in result.best and curves_path(out).is_file()
    saved = read_checkpoint(out)["meta"]
    assert saved["config"]["factors"] == [2, 3] and saved["config"]["window"] == WINDOW
    assert saved["training_data"][0]["val_sections"] == list(range(24, 30)) and saved["metrics"]["val_sections"] > 0
    messages: list[str] = []
    steps: list[int] = []
    train_volume(config(fib, out, steps=4, resume=True), progress=lambda s, n, info: steps.append(s),
                 message=messages.append)
    assert steps == [3, 4] and any("resuming at step 2" in m for m in messages)
    state = load_state(state_path(out))
    assert state["step"] == 4 and state["history"]["loss_steps"] == [1, 2, 3, 4]
    with pytest.raises(UsageError, match="resume"):
        train_volume(config(fib, out, steps=6, resume=True, model_options={**TINY, "filters": 6}))
    # fine-tuning a gan3d checkpoint (--init) works like any other model's
    tuned = train_volume(config(fib, tmp_path / "tuned.pt", init=str(out), model_options={}))
    assert tuned.steps == 2 and load_model(str(tmp_path / "tuned.pt"))[0].config.filters == 4


def test_serial_sections_only_is_a_one_line_cli_error(tmp_path: Path) -> None:
    ssem = write_h5(tmp_path / "ssem.h5", smooth_stack(depth=20, size=32), resolution=(40.0, 4.0, 4.0))
    result = CliRunner().invoke(app, ["train", ssem, "-o", str(tmp_path / "g.pt"), "--model", "gan3d",
                                      "--steps", "1", "--no-detect", "--no-progress", "--set", "filters=4"])
    text = result.stderr if hasattr(result, "stderr") else result.output
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), text
    assert "isotropic" in lines[0] and "Traceback" not in text
    assert not (tmp_path / "g.pt").exists()


def test_cli_trains_gan3d_and_skips_serial_sections(fib: str, tmp_path: Path) -> None:
    ssem = write_h5(tmp_path / "ssem.h5", smooth_stack(depth=20, size=32), resolution=(40.0, 4.0, 4.0))
    out = tmp_path / "cli.pt"
    args = ["train", fib, ssem, "-o", str(out), "--model", "gan3d", "--steps", "1", "--batch-size", "1",
            "--patch-size", "32", "--device", "cpu", "--no-detect", "--no-progress"]
    args += [item for key, value in TINY.items() for item in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "skipping ssem.h5" in " ".join(result.output.split())
    assert load_model(str(out))[0].name == "gan3d"
