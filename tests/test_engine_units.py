"""The engine's parts on their own: tile grid, blend weights, memory sizing, device, precision, config."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from emrepair.engine import EngineConfig, auto_overlap, estimate_memory, plan_tiles, resolve_device, resolve_precision
from emrepair.engine.blending import BLEND_MODES, axis_profiles
from emrepair.engine.memory import bytes_per_pixel, tile_size_for_budget
from emrepair.engine.tiling import axis_starts
from emrepair.errors import UsageError


class TwoConvs(nn.Module):
    """A tiny conv model following the engine contract."""

    halo = 2
    size_multiple = 8

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W)."""
        return self.net(torch.cat([a, b], dim=1))


class Hinted(TwoConvs):
    """Declares its forward memory instead of having it measured."""

    bytes_per_pixel = 1000.0


@pytest.mark.parametrize("shape, tile, overlap", [((300, 217), 64, 8), ((64, 64), 64, 8), ((10, 500), 64, 0),
                                                  ((129, 65), 64, 63), ((1, 1), 16, 4)])
def test_tiles_cover_the_section_with_equal_sizes(shape: tuple[int, int], tile: int, overlap: int) -> None:
    tiles = plan_tiles(shape, tile, overlap)
    covered = np.zeros(shape, dtype=int)
    for t in tiles:
        covered[t.slices] += 1
        assert (t.height, t.width) == (min(tile, shape[0]), min(tile, shape[1]))
    assert covered.min() >= 1
    assert max(t.y0 + t.height for t in tiles) == shape[0] and max(t.x0 + t.width for t in tiles) == shape[1]


def test_axis_starts_step_by_stride_and_snap_the_last() -> None:
    assert axis_starts(300, 128, 16) == [0, 112, 172]
    assert axis_starts(240, 128, 16) == [0, 112]
    assert axis_starts(100, 128, 16) == [0]
    assert len(plan_tiles((300, 240), 128, 16)) == 6


@pytest.mark.parametrize("tile, overlap", [(0, 0), (16, 16), (16, -1)])
def test_bad_tile_geometry_is_a_usage_error(tile: int, overlap: int) -> None:
    with pytest.raises(UsageError):
        plan_tiles((100, 100), tile, overlap)


@pytest.mark.parametrize("mode", BLEND_MODES)
@pytest.mark.parametrize("length, tile, overlap, halo", [(300, 64, 8, 4), (300, 64, 12, 3), (129, 64, 63, 20),
                                                          (200, 32, 2, 5), (100, 100, 10, 3), (70, 64, 0, 0)])
def test_every_pixel_gets_positive_weight(mode: str, length: int, tile: int, overlap: int, halo: int) -> None:
    starts = axis_starts(length, tile, overlap)
    size = min(tile, length)
    total = np.zeros(length)
    for start, profile in zip(starts, axis_profiles(starts, size, halo, mode)):
        assert profile.shape == (size,) and profile.dtype == np.float32 and profile.min() >= 0
        total[start:start + size] += profile
    assert total.min() > 0


def test_crop_gives_each_pixel_to_exactly_one_tile() -> None:
    starts = axis_starts(300, 64, 10)
    total = np.zeros(300)
    for start, profile in zip(starts, axis_profiles(starts, 64, 3, "crop")):
        assert set(np.unique(profile)) <= {0.0, 1.0}
        total[start:start + 64] += profile
    assert np.array_equal(total, np.ones(300))


@pytest.mark.parametrize("mode", ["gaussian", "hann"])
def test_smooth_weights_vanish_within_the_halo_of_inner_edges_only(mode: str) -> None:
    starts = axis_starts(300, 64, 16)
    profiles = axis_profiles(starts, 64, 5, mode)
    assert profiles[0][0] == pytest.approx(1.0, abs=1e-5) and profiles[-1][-1] == pytest.approx(1.0, abs=1e-5)
    assert np.all(profiles[0][-5:] == 0) and np.all(profiles[1][:5] == 0) and np.all(profiles[1][-5:] == 0)
    assert np.all(profiles[1][5:-5] > 0)


def test_hann_ramps_of_neighbours_sum_to_one() -> None:
    starts = [0, 48, 96]
    total = np.zeros(160)
    for start, profile in zip(starts, axis_profiles(starts, 64, 2, "hann")):
        total[start:start + 64] += profile
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_auto_overlap_leaves_room_to_blend_beyond_the_halos() -> None:
    assert auto_overlap(512, 0) == 64
    assert auto_overlap(512, 40) == 112
    for tile, halo in ((64, 3), (256, 16), (16, 2)):
        overlap = auto_overlap(tile, halo)
        assert 2 * halo < overlap < tile and overlap % 2 == 0


def test_tile_size_for_budget_fits_the_budget() -> None:
    side = tile_size_for_budget(4e9, 2000.0, 4, 32)
    assert side % 32 == 0 and 4 * side * side * 2000 <= 4e9 < 4 * (side + 32) ** 2 * 2000
    assert tile_size_for_budget(1.0, 2000.0, 4, 32) == 64
    assert tile_size_for_budget(1e15, 1.0, 1, 32) == 4096
    assert tile_size_for_budget(1e15, 1.0, 1, 48, max_tile=1000) == 960


def test_memory_estimates_use_a_declared_hint_or_a_probe() -> None:
    hinted = Hinted()
    params = sum(p.numel() * 4 for p in hinted.parameters())
    assert estimate_memory(hinted, 100, 3) == int(params + 3 * 104 * 104 * 1000.0)
    measured = bytes_per_pixel(TwoConvs())
    assert 16 * 4 <= measured <= 200  # at least the 16-channel activation, float32
    assert estimate_memory(TwoConvs(), 512, 4) > estimate_memory(TwoConvs(), 256, 4) > estimate_memory(TwoConvs(), 256, 1)
    with pytest.raises(ValueError):
        estimate_memory(TwoConvs(), 0, 1)


def test_resolve_device_accepts_the_documented_specs() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "", "cuda:-1", "tpu"):
        with pytest.raises(UsageError):
            resolve_device(bad)


def test_missing_cuda_falls_back_to_cpu_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for spec in ("cuda", "cuda:1", "CUDA:0"):
        with pytest.warns(UserWarning, match="CUDA is not available"):
            assert resolve_device(spec) == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("auto") == torch.device("cpu")


def test_cuda_index_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(UsageError, match="2 CUDA device"):
        resolve_device("cuda:2")


def test_precision_is_fp32_on_cpu_and_reduced_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) is None and resolve_precision("fp32", cpu) is None
    with pytest.warns(UserWarning, match="only used on CUDA"):
        assert resolve_precision("bf16", cpu) is None
    assert resolve_precision("fp16", cuda) is torch.float16 and resolve_precision("fp32", cuda) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kw: True)
    assert resolve_precision("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kw: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (7, 5))
    assert resolve_precision("auto", cuda) is torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (6, 1))
    assert resolve_precision("auto", cuda) is None
    with pytest.raises(UsageError):
        resolve_precision("fp8", cpu)


@pytest.mark.parametrize("kwargs", [dict(blend="linear"), dict(batch_size=0), dict(tile_size=4),
                                    dict(tile_size=64, overlap=64), dict(overlap=-1), dict(precision="half"),
                                    dict(tile_size=64.0), dict(batch_size=True)])
def test_config_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        EngineConfig(**kwargs)


def test_config_round_trips_to_a_dict() -> None:
    config = EngineConfig(tile_size=256, overlap=32, blend="hann", batch_size=2, device="cpu", precision="fp32")
    assert EngineConfig(**config.to_dict()) == config
