"""reslice: the xz/yz z super-resolution model, its window groups in upsample-z, and its plane trainer."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import read_all, textured_stack, write_zarr
from typer.testing import CliRunner

import emrepair.models.reslice as reslice_module
from emrepair.cli.app import app
from emrepair.engine.window import (
    VolumeTiler,
    pair_group,
    window_of,
    window_synthesizer,
)
from emrepair.models import load_model, save_checkpoint
from emrepair.models.reslice import ResliceConfig, ResliceModel, row_positions

SMALL = {"widths": (4, 8), "z_context": 1, "z_group": 3, "halo": 4, "max_factor": 4}


def noisy_model(flow: bool = False, seed: int = 0) -> ResliceModel:
    """A small random reslice model whose head is far from zero (so it is not just linear)."""
    torch.manual_seed(seed)
    model = ResliceModel(ResliceConfig(flow=flow, **SMALL))
    with torch.no_grad():
        model.unet.head.weight.normal_(std=0.05)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    model = noisy_model(flow=True)
    return str(save_checkpoint(tmp_path_factory.mktemp("ckpt") / "reslice.pt", model, model.config))


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_shape_and_measured_sections_untouched(flow: bool, factor: int) -> None:
    model = noisy_model(flow)
    stack = torch.rand(2, 1, 4, 20, 28)
    with torch.no_grad():
        out = model(stack, factor)
    assert out.shape == (2, 1, 3 * factor + 1, 20, 28)
    assert torch.equal(out[:, :, ::factor], stack)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_fresh_model_is_linear_along_z() -> None:
    model = ResliceModel(ResliceConfig(flow=False, **SMALL)).eval()
    stack = torch.rand(1, 1, 3, 16, 16)
    linear = torch.nn.functional.interpolate(stack, size=(7, 16, 16), mode="trilinear", align_corners=True)
    torch.testing.assert_close(model(stack, 3), linear.clamp(0, 1), atol=2e-3, rtol=0)


def test_transposed_input_gives_transposed_output() -> None:
    """The same U-Net runs on xz and yz planes and the two are averaged: swapping y and x swaps the output's."""
    model = noisy_model(flow=False)
    stack = torch.rand(1, 1, 3, 24, 16)
    torch.testing.assert_close(model(stack.transpose(-1, -2), 2), model(stack, 2).transpose(-1, -2),
                               atol=1e-5, rtol=0)


def test_plane_chunks_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    model = noisy_model(flow=False)
    stack = torch.rand(1, 1, 3, 12, 20)
    whole = model(stack, 2)
    monkeypatch.setattr(reslice_module, "PLANE_CHUNK_PIXELS", 40)
    torch.testing.assert_close(model(stack, 2), whole, atol=1e-6, rtol=0)


def test_row_positions_and_bad_arguments() -> None:
    assert row_positions(3, 2).tolist() == [0.0, 0.5, 0.0, 0.5, 0.0]
    model = noisy_model()
    with pytest.raises(ValueError, match="factor"):
        model(torch.rand(1, 1, 3, 8, 8), 5)
    with pytest.raises(ValueError, match="at least 2"):
        model(torch.rand(1, 1, 1, 8, 8), 2)
    with pytest.raises(ValueError):
        ResliceConfig(z_group=0)


def test_window_groups_and_memory_bound() -> None:
    assert list(window_of(4, 20, context=1, group=3)) == [2, 3, 4, 5, 6, 7]      # pairs 3, 4, 5 and one each side
    assert list(window_of(18, 20, context=2, group=8)) == list(range(14, 20))  # last group, clipped
    model = noisy_model()
    assert pair_group(model, 4, (64, 64)) == 3
    assert pair_group(model, 4, (1 << 15, 1 << 15)) == 1


def test_grouped_synthesis_matches_the_group_window(checkpoint: str) -> None:
    """Each pair comes from its group's window, whatever order the pairs are asked in."""
    model, _ = load_model(checkpoint)
    sections = (np.random.default_rng(2).random((8, 24, 24)) * 255).astype(np.uint8)
    tiler = VolumeTiler(model, "cpu")
    synthesize = window_synthesizer(tiler, 2, len(sections))
    got = {p: synthesize(p, lambda z: sections[z]) for p in (4, 0, 5, 3, 6, 1, 2)}
    again = window_synthesizer(tiler, 2, len(sections))
    for p in range(7):
        np.testing.assert_array_equal(again(p, lambda z: sections[z])[0], got[p][0])
    # pair 4 is in the group of pairs 3..5: window sections 2..7
    window = sections[2:8].astype(np.float32) / 255
    with torch.no_grad():
        direct = model(torch.from_numpy(window)[None, None], 2)[0, 0, 2 * 2 + 1].numpy()
    assert np.abs(got[4][0].astype(np.float32) - direct * 255).max() <= 1.0


def test_upsample_z_with_reslice(tmp_path: Path, checkpoint: str) -> None:
    data = textured_stack(6, 32)
    src = write_zarr(tmp_path / "in.zarr", data, chunks=(1, 32, 32))
    result = CliRunner().invoke(app, ["upsample-z", src, "-o", str(tmp_path / "up.zarr"), "--factor", "3",
                                      "--model", checkpoint, "--no-repair", "--no-progress"])
    assert result.exit_code == 0, result.output
    up = read_all(tmp_path / "up.zarr")
    assert up.shape == (16, 32, 32)
    np.testing.assert_array_equal(up[::3], data)


def test_plane_trainer_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    from emrepair.training.reslice import ResliceTrainConfig, train_reslice

    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(30, 40, 40)), axis=1), axis=2)
    volume = ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)
    with h5py.File(tmp_path / "iso.h5", "w") as f:
        f["raw"] = volume
    config = ResliceTrainConfig(crop=32, batch_size=2, steps=3, minutes=5.0, plane_rows=16, factors=(2, 3),
                                chunk_steps=2)
    summary = train_reslice(tmp_path, tmp_path / "r.pt", config, ResliceConfig(**SMALL), ("iso.h5",))
    assert summary["steps"] == 3 and set(summary["validation"]) == {"2", "3"}
    model, meta = load_model(tmp_path / "r.pt")
    assert isinstance(model, ResliceModel) and meta.name == "reslice"
    with pytest.raises(Exception, match="outside"):
        train_reslice(tmp_path, tmp_path / "x.pt", ResliceTrainConfig(steps=1, factors=(9,)), ResliceConfig(**SMALL),
                      ("iso.h5",))



def test_turned_slabs_decimate_another_axis() -> None:
    from emrepair.errors import InputError
    from emrepair.training.reslice import training_pool, turned

    slab = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    assert turned(slab, "z") is slab
    along_y = turned(slab, "y")
    assert along_y.shape == (5, 4, 6) and along_y.flags.c_contiguous
    assert np.array_equal(along_y[2], slab[:, 2, :])   # a section of the turned slab is an xz plane
    along_x = turned(slab, "x")
    assert along_x.shape == (6, 4, 5) and np.array_equal(along_x[3], slab[:, :, 3])
    pool = training_pool([(slab, slab[:1])], ("z", "z", "y"))
    assert [p.shape for p in pool] == [(4, 5, 6), (4, 5, 6), (5, 4, 6)]
    with pytest.raises(InputError, match="axis"):
        turned(slab, "t")


def test_plane_trainer_draws_from_turned_slabs(tmp_path: Path) -> None:
    from emrepair.training.reslice import ResliceTrainConfig, train_reslice

    rng = np.random.default_rng(1)
    volume = (rng.random((24, 32, 40)) * 255).astype(np.uint8)
    with h5py.File(tmp_path / "iso.h5", "w") as f:
        f["raw"] = volume
    config = ResliceTrainConfig(crop=16, batch_size=2, steps=4, minutes=5.0, plane_rows=16, factors=(2,),
                                chunk_steps=1, axes=("y", "x"))
    summary = train_reslice(tmp_path, tmp_path / "r.pt", config, ResliceConfig(**SMALL), ("iso.h5",))
    assert summary["steps"] == 4 and summary["train_config"]["axes"] == ["y", "x"]
class ScriptedRng:
    """Stands in for a numpy Generator: ``integers``, ``random`` and ``uniform`` return the scripted values."""

    def __init__(self, integers: list[int], randoms: list[float], uniforms: list[float]) -> None:
        self.values = {"integers": iter(integers), "random": iter(randoms), "uniform": iter(uniforms)}

    def integers(self, *_: object) -> int:
        return next(self.values["integers"])

    def random(self) -> float:
        return next(self.values["random"])

    def uniform(self, *_: object) -> float:
        return next(self.values["uniform"])


@pytest.mark.parametrize("view", ["xz", "yz"])
@pytest.mark.parametrize("reverse", [False, True])
def test_trainer_planes_carry_neighbours_as_the_model_lays_them_out(view: str, reverse: bool) -> None:
    from emrepair.training.reslice import PlaneSampler

    offsets = (-2, 3)
    model = ResliceModel(ResliceConfig(flow=True, plane_offsets=offsets, **SMALL))
    known = torch.from_numpy(textured_stack(6, 24, seed=3)[:, :20]).float()[None, None] / 255.0
    x = model.volume_channels(known, 3)  # (1, 4, 16, 20, 24)
    at = 5
    if view == "xz":
        planes, group, across = x.permute(0, 3, 1, 2, 4).reshape(20, 4, 16, 24), 20, 24
    else:
        planes, group, across = x.permute(0, 4, 1, 2, 3).reshape(24, 4, 16, 20), 24, 20
    expected = model.with_neighbours(planes, group, at, at + 1)[0, :, :, :16].numpy()
    if reverse:
        expected = expected[[0, 1, 3, 2, 4, 6, 5, 7, 9, 8], ::-1]
    assert expected.shape == (10, 16, 16) and model.unet.in_channels == 10
    rng = ScriptedRng([0, at, 0], [0.0 if view == "xz" else 0.9, 0.9, 0.0 if reverse else 0.9], [1.0, 0.0])
    sampler = PlaneSampler(x[0].numpy(), known[0, 0].repeat_interleave(3, 0)[:16].numpy(), 16, 16,
                           rng, offsets)  # type: ignore[arg-type]
    inp, _ = sampler.plane()
    np.testing.assert_allclose(inp, expected, atol=1e-6)


def test_added_plane_offsets_keep_the_output_until_trained() -> None:
    from emrepair.training.reslice import with_plane_offsets

    model = noisy_model(flow=True)
    grown = with_plane_offsets(model, (-3, 3)).eval()
    assert grown.unet.in_channels == 10 and grown.config.plane_offsets == (-3, 3)
    stack = torch.from_numpy(textured_stack(3, 24, seed=4)).float()[None, None] / 255.0
    torch.testing.assert_close(grown(stack, 2), model(stack, 2))
    with pytest.raises(Exception, match="single planes"):
        with_plane_offsets(grown, (1,))
    with pytest.raises(ValueError, match="non-zero"):
        ResliceConfig(plane_offsets=(0, 2))


def test_grid_layout_helpers() -> None:
    from emrepair.engine.grid_repair import grid_layout, grid_ratio, known_around
    from emrepair.errors import UsageError

    assert grid_ratio((40.0, 10.0, 10.0), 1, 8) == 4 and grid_ratio((10.0, 10.0, 10.0), 4, 8) == 4
    assert grid_ratio(None, 2, 8) == 2 and grid_ratio((float("nan"),) * 3, 1, 8) == 1
    with pytest.raises(UsageError, match="pixels apart"):
        grid_ratio((50.0, 4.0, 4.0), 1, 8)
    usable = lambda z: z != 3
    assert known_around(5, 7, 1, 3, usable, 9) == [4, 5, 7, 8]  # 3 unusable, 9 past the end
    assert known_around(8, 16, 4, 1, lambda z: True, 30) == [4, 8, 16, 20]
    assert grid_layout([4, 8, 16, 20], [12], 4, 4) == ([0, 4, 12, 16], 17, [8])


def test_repair_context_is_the_models_own() -> None:
    from emrepair.engine.grid_repair import repair_context

    assert repair_context(ResliceModel(ResliceConfig(**SMALL, repair_context=0))) == 0
    assert repair_context(ResliceModel(ResliceConfig(**{**SMALL, "z_context": 2}))) == 2  # the default
    assert repair_context(torch.nn.Identity()) == 1
    with pytest.raises(ValueError, match="repair_context"):
        ResliceConfig(repair_context=-1)


def test_fix_with_a_grid_model(tmp_path: Path, checkpoint: str) -> None:
    from helpers import write_h5

    data = textured_stack(10, 40)
    broken = data.copy()
    broken[5] = 0
    src = write_h5(tmp_path / "in.h5", broken, resolution=(40.0, 10.0, 10.0))
    out = tmp_path / "fixed.zarr"
    result = CliRunner().invoke(app, ["fix", src, "-o", str(out), "--model", checkpoint, "--sections", "5",
                                      "--no-progress", "--fold-model", "none"])
    assert result.exit_code == 0, result.output
    fixed = read_all(out)
    np.testing.assert_array_equal(np.delete(fixed, 5, axis=0), np.delete(broken, 5, axis=0))
    linear = (data[4].astype(np.float64) + data[6]) / 2
    assert np.abs(fixed[5] - linear).max() > 2 and fixed[5].std() > 5
    # serial sections far thinner than they are apart: one line, no output
    src2 = write_h5(tmp_path / "sstem.h5", broken, resolution=(50.0, 4.0, 4.0))
    bad = CliRunner().invoke(app, ["fix", src2, "-o", str(tmp_path / "x.zarr"), "--model", checkpoint,
                                   "--sections", "5", "--no-progress"])
    lines = [line for line in bad.output.strip().splitlines() if line.strip() and not line.startswith("warning:")]
    assert bad.exit_code != 0 and len(lines) == 1 and "pixels apart" in lines[0], bad.output
    assert not (tmp_path / "x.zarr").exists()


def test_eval_scores_a_grid_model(tmp_path: Path, checkpoint: str) -> None:
    from helpers import write_h5

    from emrepair.pipelines.eval import evaluate

    src = write_h5(tmp_path / "iso.h5", textured_stack(16, 32), resolution=(10.0, 10.0, 10.0))
    result = evaluate(src, [checkpoint], decimate=2, max_sections=2, device="cpu", detect=False)
    score = result.score(checkpoint)
    assert len(result.cases) == 2 and np.isfinite(score.psnr) and score.psnr != result.score("linear").psnr


def test_eval_auto_is_fixs_pick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import write_h5

    from emrepair.pipelines import model_choice
    from emrepair.pipelines.eval import resolve_auto

    seen = []
    monkeypatch.setattr(model_choice, "default_fix_model",
                        lambda voxel, device: seen.append((voxel, device)) or "picked")
    src = write_h5(tmp_path / "iso.h5", textured_stack(4, 16), resolution=(10.0, 5.0, 5.0))
    assert resolve_auto(src, ["flow", "auto"], 4) == ["flow", "picked"] and seen == [((40.0, 5.0, 5.0), "cpu")]
    assert resolve_auto(src, ["flow"], 4) == ["flow"] and len(seen) == 1


def test_fusion_stage_keeps_measured_sections_and_trains(tmp_path: Path, checkpoint: str) -> None:
    from emrepair.training.reslice import ResliceTrainConfig, train_fusion, with_fusion

    base, _ = load_model(checkpoint)
    fused = with_fusion(base, (4, 8)).eval()
    torch.testing.assert_close(fused.unet.state_dict(), base.unet.state_dict())
    stack = torch.rand(1, 1, 3, 20, 20)
    with torch.no_grad():
        out = fused(stack, 3)
        plain = base(stack, 3)
    assert torch.equal(out[:, :, ::3], stack) and out.shape == plain.shape
    assert 0 < float((out - plain).abs().max()) < 0.05  # a fresh fusion stage only nudges the views' mean
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(30, 40, 40)), axis=1), axis=2)
    with h5py.File(tmp_path / "iso.h5", "w") as f:
        f["raw"] = ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)
    config = ResliceTrainConfig(crop=32, batch_size=2, steps=2, plane_rows=16, factors=(2,), chunk_steps=1)
    summary = train_fusion(tmp_path, Path(checkpoint), tmp_path / "f.pt", (4, 8), config, ("iso.h5",))
    assert summary["fusion"]["steps"] == 2 and "2" in summary["validation"]
    model, _ = load_model(tmp_path / "f.pt")
    assert model.fuse is not None and model.config.fuse_widths == (4, 8)


def test_auto_picks_reslice_where_it_fits(weights_dir: Path) -> None:
    from emrepair.models import FlowUNetConfig, FlowUNetModel, save_checkpoint
    from emrepair.pipelines.model_choice import (
        auto_fix_model,
        default_fix_model,
        default_upsample_model,
    )

    fib, sstem = (40.0, 10.0, 10.0), (50.0, 4.0, 4.0)
    assert default_fix_model(fib, "cuda") == "flow" and default_upsample_model(fib, 4) == "flow"  # no weights
    small = FlowUNetConfig(widths=(4, 8))
    save_checkpoint(weights_dir / "flowunet.pt", FlowUNetModel(small), small)
    config = ResliceConfig(**SMALL)
    save_checkpoint(weights_dir / "reslice.pt", ResliceModel(config), config)
    assert default_fix_model(fib, "cuda") == "reslice" and default_fix_model(sstem, "cuda") == "flowunet"
    assert default_fix_model(None, "cuda") == "flowunet"
    notes: list[str] = []
    assert auto_fix_model("auto", fib, "cpu", notes.append) == "flowunet"  # minutes per section on a CPU
    assert len(notes) == 1 and "--model reslice" in notes[0]
    assert auto_fix_model("auto", sstem, "cpu", notes.append) == "flowunet" and len(notes) == 1
    assert auto_fix_model("reslice", fib, "cpu", notes.append) == "reslice" and len(notes) == 1
    # upsample-z: the output's sections about a pixel apart, and a factor the model offers (up to 8)
    assert default_upsample_model(fib, 4) == "reslice" and default_upsample_model(None, 3) == "reslice"
    assert default_upsample_model(sstem, 4) == "flowunet"
    assert default_upsample_model((90.0, 10.0, 10.0), 9) == "flowunet"
    # the factors the shipped checkpoint itself offers (SMALL: up to 4), not the config class's default of 8
    assert default_upsample_model((40.0, 10.0, 10.0), 4) == "reslice"
    assert default_upsample_model((60.0, 10.0, 10.0), 6) == "flowunet"


def test_channels_last_weights_change_no_output() -> None:
    from emrepair.models.base import channels_last_convs

    torch.manual_seed(0)
    model = ResliceModel(ResliceConfig(widths=(4, 8), flow=False, max_factor=4)).eval()
    stack = torch.rand(1, 1, 3, 24, 24)
    with torch.no_grad():
        before = model(stack, 2)
        channels_last_convs(model)
        after = model(stack, 2)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


def test_reslice_runs_in_bf16_only_on_a_cpu_with_native_bf16(monkeypatch) -> None:
    from emrepair.engine import device as engine_device

    model = ResliceModel(ResliceConfig(widths=(4, 8), flow=False, max_factor=4)).eval()
    for native, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(engine_device, "cpu_has_native_bf16", lambda native=native: native)
        assert engine_device.volume_autocast_dtype(model, torch.device("cpu")) is expected
        assert engine_device.volume_autocast_dtype(torch.nn.Conv2d(1, 1, 1), torch.device("cpu")) is None
    monkeypatch.setattr(engine_device, "cpu_has_native_bf16", lambda: True)
    window = np.random.default_rng(0).random((3, 24, 24)).astype(np.float32)
    tiler = VolumeTiler(model, "cpu")
    assert tiler.autocast_dtype is torch.bfloat16
    assert VolumeTiler(model, "cpu", precision="fp32").autocast_dtype is None  # --precision fp32 is kept
    out = tiler.upsample(window, 2, range(5))
    assert out.dtype == np.float32 and out.shape == (5, 24, 24)
    np.testing.assert_array_equal(out[[0, 2, 4]], window)  # measured sections pass through exactly in bf16 too


def test_only_a_grid_model_fills_a_grid() -> None:
    """VolumeTiler.fill asks for a grid model (reslice); a volume model without fill_grid (gan3d) is refused."""
    from emrepair.models.gan3d import GAN3DConfig, GAN3DModel

    tiler = VolumeTiler(GAN3DModel(GAN3DConfig(filters=4, pre_modules=1, post_modules=1, max_factor=2)), "cpu")
    window = np.zeros((2, 16, 16), np.float32)
    with pytest.raises(ValueError, match="cannot fill gaps on a grid"):
        tiler.fill(window, [0, 2], 3, range(1, 2))
    grid = VolumeTiler(ResliceModel(ResliceConfig()), "cpu")
    assert grid.fill(window, [0, 2], 3, range(1, 2)).shape == (1, 16, 16)
