"""emrepair eval: dropped sections repaired by each model and scored against the originals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from emrepair.engine.metrics import psnr, ssim
from emrepair.errors import UsageError
from emrepair.pipelines.eval import BLUR_SIGMAS, BLURRED_LINEAR, evaluate, plan_cases


def write_shifted_stack(path: Path, depth: int = 8, side: int = 64, step: int = 2, seed: int = 0,
                        voxel_size: tuple[float, float, float] = (50.0, 4.0, 4.0)) -> np.ndarray:
    """A uint8 stack of one smooth random field seen through a window shifted by ``step`` px per section."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=(side + depth * step, side + depth * step)), 3.0)
    field = (field - field.min()) / (field.max() - field.min())
    stack = np.stack([field[z * step:z * step + side, z * step:z * step + side] for z in range(depth)])
    stack = np.rint(stack * 255).astype(np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=stack).attrs["resolution"] = np.array(voxel_size)
    return stack


def test_metrics_on_known_images() -> None:
    image = np.full((16, 16), 0.5, np.float32)
    assert psnr(image, image) == math.inf
    assert psnr(image + 0.1, image) == pytest.approx(20.0, abs=1e-4)
    assert ssim(image, image) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        psnr(image, image[:8])


def test_linear_psnr_matches_direct_computation(tmp_path: Path) -> None:
    stack = write_shifted_stack(tmp_path / "s.h5")
    result = evaluate(str(tmp_path / "s.h5"), [], device="cpu", detect=False)
    assert [c.targets for c in result.cases] == [(z,) for z in range(1, 7)]
    direct = []
    for z in range(1, 7):
        average = np.rint((stack[z - 1].astype(np.float64) + stack[z + 1]) / 2) / 255
        direct.append(psnr(average, stack[z] / 255.0))
    assert result.score("linear").psnr == pytest.approx(float(np.mean(direct)), abs=0.05)
    names = [s.name for s in result.scores]
    assert names == ["linear", "flow", BLURRED_LINEAR]
    assert result.blur_sigma in BLUR_SIGMAS
    assert result.score("linear").seconds_per_megapixel is not None


def test_gap_positions_and_json_schema(tmp_path: Path) -> None:
    write_shifted_stack(tmp_path / "s.h5", depth=10)
    result = evaluate(str(tmp_path / "s.h5"), ["linear"], gap=2, max_sections=3, device="cpu", detect=False)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) >= {"version", "input", "shape", "gap", "decimate", "device", "cases", "models", "blur_sigma"}
    assert len(data["cases"]) == 3 and all(c["t"] == [0.3333, 0.6667] for c in data["cases"])
    for case in data["cases"]:
        assert case["right"] - case["left"] == 3 and case["targets"] == [case["left"] + 1, case["left"] + 2]
    model = data["models"][0]
    assert set(model) >= {"name", "psnr", "ssim", "psnr_by_t", "ssim_by_t", "seconds_per_megapixel", "sections"}
    assert set(model["psnr_by_t"]) == {"0.3333", "0.6667"} and model["sections"] == 6
    rows = result.table_rows()
    assert rows[0]["model"] == "linear" and rows[0]["dpsnr"] == 0.0 and "psnr@0.33" in rows[0]


def test_plan_cases_decimation_defects_and_errors() -> None:
    cases = plan_cases(20, gap=1, decimate=4, defective=set(), sections=None, max_sections=None, seed=0)
    assert cases[0].left == 0 and cases[0].targets == (4,) and cases[0].right == 8
    assert cases[-1].right == 19
    skipped = plan_cases(10, 1, 1, defective={5}, sections=None, max_sections=None, seed=0)
    assert all(5 not in (c.left, c.right, *c.targets) for c in skipped)
    with pytest.raises(UsageError, match="section 0"):
        plan_cases(10, 1, 1, set(), sections=[0], max_sections=None, seed=0)
    with pytest.raises(UsageError, match="no section"):
        plan_cases(4, gap=3, decimate=1, defective=set(), sections=None, max_sections=None, seed=0)
    picked = plan_cases(30, 1, 1, set(), None, max_sections=5, seed=1)
    assert len(picked) == 5 and picked == plan_cases(30, 1, 1, set(), None, max_sections=5, seed=1)


def test_eval_cli_json_and_table(tmp_path: Path) -> None:
    from emrepair.cli.commands_train import eval_command

    write_shifted_stack(tmp_path / "s.h5")
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(tmp_path / "s.h5"), "--json", "--no-detect", "--max-sections", "2",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [m["name"] for m in data["models"]] == ["linear", "flow", BLURRED_LINEAR]
    table = runner.invoke(app, ["eval", str(tmp_path / "s.h5"), "--no-detect", "--sections", "3", "--device", "cpu"])
    assert table.exit_code == 0 and "flow" in table.output
    bad = runner.invoke(app, ["eval", str(tmp_path / "s.h5"), "--model", "nonexistent", "--device", "cpu"])
    assert bad.exit_code == 2 and "unknown model" in bad.output
