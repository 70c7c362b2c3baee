"""`emrepair train --model sff|reslice --stage ...`: the timed trainers reached through the one CLI."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.models import SFFConfig, SFFModel, load_model, save_checkpoint

runner = CliRunner()
SMALL = SFFConfig(unfold_channels=4, fusion_channels=4, levels=2, reach=6, transition=3, halo=4,
                  contrast_channels=4, contrast_factor=2)
TINY_FOLD_RUN = ["--steps", "1", "--patch-size", "64", "--batch-size", "2", "--set", "val_examples=2",
                 "--device", "cpu", "--no-progress"]


def iso_stack(tmp_path: Path) -> str:
    rng = np.random.default_rng(1)
    path = tmp_path / "iso.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = (rng.random((24, 32, 40)) * 255).astype(np.uint8)
    return str(path)


def one_line_error(result: object, text: str) -> None:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code != 0 and lines[-1].startswith("error:") and text in lines[-1], result.output
    assert "Traceback" not in result.output


def test_reslice_planes_stage_trains_with_set_fields(tmp_path: Path) -> None:
    out = tmp_path / "r.pt"
    result = runner.invoke(app, ["train", iso_stack(tmp_path), "--model", "reslice", "--stage", "planes",
                                 "-o", str(out), "--steps", "2", "--patch-size", "16", "--batch-size", "2",
                                 "--set", "plane_rows=16", "--set", "factors=2", "--set", "chunk_steps=1",
                                 "--set", "widths=4,8", "--set", "flow=false", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "after 2 steps" in result.output
    model, _ = load_model(str(out))
    assert model.config.widths == (4, 8) and model.config.flow is False
    meta = torch.load(out, weights_only=True)["meta"]
    assert meta["train_config"]["factors"] == [2] and meta["trained_on"][0].startswith("iso.h5")


@pytest.mark.parametrize("args, text", [
    (["--model", "reslice", "--stage", "planes", "--set", "plane_offsets=0,3", "--steps", "1"], "non-zero"),
    (["--model", "reslice", "--stage", "fusion", "--steps", "1"], "fuse_widths"),
    (["--model", "reslice", "--stage", "planes", "--set", "bogus=1", "--steps", "1"], "bogus"),
    (["--model", "reslice", "--stage", "planes", "--epochs", "1"], "--epochs"),
    (["--model", "sff", "--steps", "1"], "not one of the fold training stacks"),
    (["--model", "sff", "--stage", "planes"], "--stage for sff must be one of unfold, contrast"),
    (["--model", "flowunet", "--stage", "planes"], "--stage is for sff and reslice"),
    (["--model", "flowunet", "--minutes", "1", "--steps", "1", "--no-detect"], "--minutes is for the timed"),
])
def test_bad_stage_runs_are_one_line_errors(tmp_path: Path, args: list[str], text: str) -> None:
    out = tmp_path / "r.pt"
    result = runner.invoke(app, ["train", iso_stack(tmp_path), "-o", str(out), "--device", "cpu", "--no-progress",
                                 *args])
    one_line_error(result, text)
    assert not out.exists()


def test_sff_unfold_and_contrast_stages(shared_data: Path, tmp_path: Path) -> None:
    init = save_checkpoint(tmp_path / "sff.pt", SFFModel(SMALL), SMALL, {"trained_on": "test"})
    result = runner.invoke(app, ["train", str(shared_data), "--model", "sff", "--init", str(init),
                                 "-o", str(tmp_path / "a.pt"), *TINY_FOLD_RUN])
    assert result.exit_code == 0, result.output
    meta = torch.load(tmp_path / "a.pt", weights_only=True)["meta"]
    assert meta["steps"] == 1 and meta["train_config"]["crop"] == 64 and meta["init"] == "sff.pt"
    result = runner.invoke(app, ["train", str(shared_data / "isbi2012_train.h5"), "--model", "sff",
                                 "--stage", "contrast", "--init", str(tmp_path / "a.pt"),
                                 "-o", str(tmp_path / "b.pt"), *TINY_FOLD_RUN])
    assert result.exit_code == 0, result.output
    meta = torch.load(tmp_path / "b.pt", weights_only=True)["meta"]
    assert meta["contrast_training"]["steps"] == 1
    assert [name.split(" ")[0] for name in meta["contrast_training"]["trained_on"]] == ["isbi2012_train"]


def test_sff_stage_refuses_a_missing_init_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for stage in ("unfold", "contrast"):
        result = runner.invoke(app, ["train", str(folder), "--model", "sff", "--stage", stage,
                                     "--init", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "o.pt"),
                                     "--steps", "1", "--no-progress"])
        one_line_error(result, "")
