"""The tiled interpolator against untiled runs of tiny random-weight models: equality, seams,
batching, determinism, progress, bad inputs and out-of-memory handling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from emrepair.engine import EngineConfig, TiledInterpolator, plan_tiles
from emrepair.engine.tiling import axis_starts
from emrepair.errors import InputError, UsageError

BLENDS = ["gaussian", "hann", "crop"]


class RandomConvModel(nn.Module):
    """A linear blend plus a residual from ``depth`` random 3x3 convolutions (receptive field = depth).

    ``halo`` is what the model declares to the engine; declaring less than ``depth`` makes tile
    edges visible unless the overlap hides them.
    """

    def __init__(self, depth: int = 3, halo: int | None = None, size_multiple: int = 1, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        in_channels = 3
        for i in range(depth):
            out_channels = 1 if i == depth - 1 else 8
            conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.4)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator) * 0.3)
            layers += [conv, nn.Tanh()]
            in_channels = out_channels
        self.body = nn.Sequential(*layers)
        self.halo = depth if halo is None else halo
        self.size_multiple = size_multiple

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) prediction at t between a and b."""
        assert a.ndim == 4 and a.shape[1] == 1 and a.shape == b.shape and t.shape == (a.shape[0],)
        assert a.shape[-2] % self.size_multiple == 0 and a.shape[-1] % self.size_multiple == 0
        t_map = t.to(a.dtype).view(-1, 1, 1, 1).expand_as(a)
        blend = (1 - t_map) * a + t_map * b
        return (blend + 0.3 * self.body(torch.cat([a, b, t_map], dim=1))).clamp(0, 1)


class LinearModel(nn.Module):
    """The exact linear blend (1 - t) a + t b; needs no context."""

    halo = 0
    size_multiple = 1

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) linear blend."""
        t_map = t.to(a.dtype).view(-1, 1, 1, 1)
        return (1 - t_map) * a + t_map * b


class OomAboveModel(LinearModel):
    """Raises CUDA's out-of-memory error for tiles larger than ``limit`` pixels a side."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.sides: list[int] = []

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The linear blend, or OutOfMemoryError for big tiles."""
        self.sides.append(max(a.shape[-2:]))
        if max(a.shape[-2:]) > self.limit:
            raise torch.cuda.OutOfMemoryError("simulated")
        return super().forward(a, b, t)


def untiled(model: nn.Module, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The model on the whole section at once (reflect-padded to its size multiple), on the CPU."""
    m = model.size_multiple
    pad = ((0, -a.shape[0] % m), (0, -a.shape[1] % m))
    a_t = torch.from_numpy(np.pad(a, pad, mode="reflect")[None, None].astype(np.float32))
    b_t = torch.from_numpy(np.pad(b, pad, mode="reflect")[None, None].astype(np.float32))
    with torch.inference_mode():
        out = model.to("cpu").eval()(a_t, b_t, torch.tensor([t]))
    return out[0, 0, :a.shape[0], :a.shape[1]].numpy()


def smooth_pair(shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two different, smooth float32 sections in [0, 1]: waves plus box-blurred noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    pair = []
    for k in range(2):
        noise = rng.random((shape[0] + 8, shape[1] + 8)).astype(np.float32)
        noise = np.cumsum(np.cumsum(noise, axis=0), axis=1)
        blurred = (noise[9:, 9:] - noise[:-9, 9:] - noise[9:, :-9] + noise[:-9, :-9]) / 81.0
        blurred = np.pad(blurred, ((0, shape[0] - blurred.shape[0]), (0, shape[1] - blurred.shape[1])), mode="edge")
        wave = 0.5 + 0.25 * np.sin(x / (17 + 5 * k)) * np.cos(y / (23 - 4 * k))
        pair.append(np.clip(0.6 * wave + 0.4 * blurred, 0, 1).astype(np.float32))
    return pair[0], pair[1]


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (inf when identical)."""
    mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def seam_ratio(image: np.ndarray, starts: list[int], tile_size: int) -> float:
    """The largest column-mean |d/dx| across a tile edge, relative to the median over all columns."""
    dx = np.abs(np.diff(image.astype(np.float64), axis=1)).mean(axis=0)
    edges = sorted({e for s in starts for e in (s - 1, s + tile_size - 1) if 0 <= e < dx.size})
    return float(dx[edges].max() / np.median(dx))


def engine(model: nn.Module, device: torch.device | str = "cpu", **config: object) -> TiledInterpolator:
    """An interpolator in fp32 (so CUDA results compare with the CPU reference)."""
    config.setdefault("precision", "fp32")
    return TiledInterpolator(model, EngineConfig(device=str(device), **config))


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("shape, size_multiple", [((300, 217), 1), ((300, 217), 8), ((37, 50), 8)])
def test_tiled_matches_untiled(device: torch.device, blend: str, shape: tuple[int, int], size_multiple: int) -> None:
    model = RandomConvModel(depth=3, size_multiple=size_multiple)
    a, b = smooth_pair(shape)
    eng = engine(model, device, tile_size=64, blend=blend, batch_size=5)
    outputs = eng.interpolate(a, b, [0.3, 0.7])
    assert len(eng.plan(shape)) == (24 if shape == (300, 217) else 1)
    for t, out in zip((0.3, 0.7), outputs):
        assert out.dtype == np.float32 and out.shape == shape
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert psnr(out, untiled(model, a, b, t)) >= 45.0


@pytest.mark.parametrize("blend", BLENDS)
def test_no_seams_at_tile_edges(blend: str) -> None:
    # The model's receptive field (6) exceeds its declared halo (2): only the overlap hides the edges.
    model = RandomConvModel(depth=6, halo=2)
    a, b = smooth_pair((256, 256))
    eng = engine(model, tile_size=64, blend=blend)
    out = eng.interpolate(a, b, [0.5])[0]
    reference = untiled(model, a, b, 0.5)
    starts = axis_starts(256, 64, eng.overlap_for(64))
    assert seam_ratio(out, starts, 64) <= 1.1 * seam_ratio(reference, starts, 64)
    assert psnr(out, reference) >= 45.0


def test_seam_check_detects_tiles_without_overlap() -> None:
    """Negative control for the seam check: butted tiles with no context show their edges."""
    model = RandomConvModel(depth=4, halo=0)
    a, b = smooth_pair((256, 256))
    out = engine(model, tile_size=64, overlap=0, blend="crop").interpolate(a, b, [0.5])[0]
    reference = untiled(model, a, b, 0.5)
    starts = axis_starts(256, 64, 0)
    assert seam_ratio(out, starts, 64) > 5 * seam_ratio(reference, starts, 64)


@pytest.mark.parametrize("blend", BLENDS)
def test_linear_model_gives_the_linear_blend(device: torch.device, blend: str) -> None:
    a, b = smooth_pair((150, 131), seed=3)
    ts = [0.1, 0.5, 0.9]
    outputs = engine(LinearModel(), device, tile_size=48, overlap=10, blend=blend).interpolate(a, b, ts)
    for t, out in zip(ts, outputs):
        np.testing.assert_allclose(out, (1 - t) * a + t * b, atol=2e-6)


def test_batch_size_does_not_change_the_result(device: torch.device) -> None:
    model = RandomConvModel(depth=3)
    a, b = smooth_pair((130, 97), seed=1)
    ts = [0.25, 0.5, 0.75]
    runs = [engine(model, device, tile_size=32, batch_size=n).interpolate(a, b, ts) for n in (1, 5)]
    for one, five in zip(*runs):
        np.testing.assert_allclose(one, five, atol=1e-6, rtol=0)


def test_several_positions_match_separate_calls() -> None:
    model = RandomConvModel(depth=3)
    a, b = smooth_pair((90, 70), seed=2)
    eng = engine(model, tile_size=32, batch_size=4)
    together = eng.interpolate(a, b, [0.2, 0.6])
    apart = [eng.interpolate(a, b, [t])[0] for t in (0.2, 0.6)]
    for x, y in zip(together, apart):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)
    assert not np.allclose(together[0], together[1], atol=1e-3)


def test_cpu_runs_are_bit_identical() -> None:
    model = RandomConvModel(depth=3)
    a, b = smooth_pair((120, 100), seed=4)
    first = engine(model, tile_size=48).interpolate(a, b, [0.5])[0]
    second = engine(model, tile_size=48).interpolate(a, b, [0.5])[0]
    assert np.array_equal(first, second)


def test_progress_counts_the_planned_tiles() -> None:
    calls: list[tuple[int, int]] = []
    a, b = smooth_pair((100, 90))
    eng = engine(RandomConvModel(depth=2, size_multiple=16), tile_size=40, overlap=8, batch_size=3)
    eng.interpolate(a, b, [0.3, 0.5], progress=lambda done, total: calls.append((done, total)))
    total = len(eng.plan((100, 90)))
    assert total == len(plan_tiles((112, 96), 48, 8)) == 9
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})


def test_images_smaller_than_a_tile_and_odd_sizes() -> None:
    model = RandomConvModel(depth=2, size_multiple=16)
    for shape in ((1, 1), (1, 9), (5, 3), (17, 16)):
        a, b = np.full(shape, 0.2, np.float32), np.full(shape, 0.8, np.float32)
        out = engine(model, tile_size=64).interpolate(a, b, [0.5])[0]
        assert out.shape == shape and np.isfinite(out).all()


def test_auto_tile_size_on_cpu() -> None:
    eng = engine(RandomConvModel(depth=2, size_multiple=16))
    assert eng.tile_size_for((2000, 3000)) == 512
    assert eng.tile_size_for((100, 70)) == 112
    assert engine(RandomConvModel(depth=2, size_multiple=16), tile_size=100).tile_size_for((500, 500)) == 112


def test_out_of_memory_halves_auto_tiles_and_reports_fixed_ones() -> None:
    a, b = smooth_pair((300, 300))
    model = OomAboveModel(limit=160)
    out = engine(model).interpolate(a, b, [0.5])[0]
    np.testing.assert_allclose(out, 0.5 * a + 0.5 * b, atol=2e-6)
    assert model.sides[0] == 300 and max(model.sides[1:]) <= 160
    with pytest.raises(UsageError, match="out of GPU memory"):
        engine(OomAboveModel(limit=160), tile_size=256).interpolate(a, b, [0.5])


@pytest.mark.parametrize("a, b, error", [
    (np.zeros((10, 10), np.float32), np.zeros((10, 11), np.float32), ValueError),
    (np.zeros((2, 10, 10), np.float32), np.zeros((2, 10, 10), np.float32), ValueError),
    (np.full((10, 10), np.nan, np.float32), np.zeros((10, 10), np.float32), InputError),
    (np.zeros((10, 10), np.float32), np.full((10, 10), np.inf, np.float32), InputError),
    (np.full((10, 10), 3.0, np.float32), np.zeros((10, 10), np.float32), ValueError),
    ([[0.0]], [[0.0]], ValueError),
])
def test_bad_sections_are_refused(a: object, b: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        engine(LinearModel()).interpolate(a, b, [0.5])  # type: ignore[arg-type]


@pytest.mark.parametrize("ts", [[0.0], [1.0], [1.5], ["x"], 0.5])
def test_bad_positions_are_refused(ts: object) -> None:
    a = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError):
        engine(LinearModel()).interpolate(a, a, ts)  # type: ignore[arg-type]


def test_no_positions_give_no_outputs() -> None:
    a = np.zeros((8, 8), np.float32)
    assert engine(LinearModel()).interpolate(a, a, []) == []


def test_models_must_honour_the_contract() -> None:
    class NoHalo(nn.Module):
        size_multiple = 1

    with pytest.raises(ValueError, match="halo"):
        engine(NoHalo())

    class WrongShape(LinearModel):
        def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return a[:, :, :-1]

    with pytest.raises(ValueError, match="expected a tensor of shape"):
        engine(WrongShape(), tile_size=16).interpolate(np.zeros((20, 20), np.float32),
                                                       np.zeros((20, 20), np.float32), [0.5])


def test_tile_too_small_for_halo_and_small_overlap_warns() -> None:
    with pytest.raises(UsageError, match="halo"):
        engine(RandomConvModel(depth=8), tile_size=16)
    eng = engine(RandomConvModel(depth=4), tile_size=64, overlap=2)
    with pytest.warns(UserWarning, match="seams"):
        eng.overlap_for(64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eng.overlap_for(64)  # warns once per engine


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_reduced_precision_stays_close() -> None:
    model = RandomConvModel(depth=3, size_multiple=8)
    a, b = smooth_pair((300, 217))
    eng = TiledInterpolator(model, EngineConfig(device="cuda", precision="auto", blend="gaussian"))
    assert eng.autocast_dtype in (torch.bfloat16, torch.float16)
    out = eng.interpolate(a, b, [0.5])[0]
    assert psnr(out, untiled(model, a, b, 0.5)) >= 35.0
    assert 64 <= eng.tile_size_for((5000, 5000)) <= 4096
