"""The fast lost-region search gives the results of the direct computation it replaced."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emrepair.detection import DetectConfig
from emrepair.detection.lost_lines import _noisy_lines
from emrepair.detection.lost_regions import find_lost_regions, lost_from, measure_lost
from emrepair.detection.lost_sums import _cell_sums


def _section(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
    base = (base - base.min()) / (base.max() - base.min())
    out = np.clip(np.rint(255 * (0.2 + 0.6 * base) + rng.normal(0, 3, (h, w))), 0, 255).astype(np.float32)
    out[:, 20:50] = rng.integers(0, 256, (h, 30))  # noise columns
    out[40:46] = rng.integers(0, 256, (6, w))  # noise rows
    out[h // 2: h // 2 + 4] = np.clip(rng.normal(128, 30, (4, w)), 0, 255).round()  # weaker noise rows
    return out


def _direct_noisy_lines(values: np.ndarray, axis: int, cell: int, config: DetectConfig,
                        global_std: float) -> np.ndarray:
    """The per-segment computation on a copy of the lines (the earlier implementation)."""
    lines = values if axis == 1 else values.T
    seg = 4 * cell
    count = lines.shape[1] // seg
    parts = lines[:, : count * seg].reshape(lines.shape[0], count, seg).astype(np.float64)
    centred = parts - parts.mean(axis=2, keepdims=True)
    a, b = centred[:, :, :-1], centred[:, :, 1:]
    denom = np.sqrt((a * a).sum(axis=2) * (b * b).sum(axis=2))
    autocorr = np.where(denom > 1e-9, (a * b).sum(axis=2) / np.maximum(denom, 1e-12), 1.0)
    noisy = (autocorr < config.lost_noise_autocorr) & (parts.std(axis=2) >= config.lost_noise_std * global_std)
    share = noisy.mean(axis=1)
    whole = lines[:, : count * seg].astype(np.float64)
    centred = whole - whole.mean(axis=1, keepdims=True)
    a, b = centred[:, :-1], centred[:, 1:]
    line_autocorr = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    noise_line = (line_autocorr < config.lost_noise_autocorr) & (whole.std(axis=1) >= config.lost_noise_std * global_std)
    return (share >= config.lost_stripe_cover) | (noise_line & (share >= 0.6) & (count >= 8))


@pytest.mark.parametrize("shape", [(530, 75), (203, 157), (64, 64)])
def test_exact_cell_sums_equal_the_float64_ones(shape: tuple[int, int]) -> None:
    values = _section(*shape)
    fast, slow = _cell_sums(values, 8, exact_f32=True), _cell_sums(values, 8, exact_f32=False)
    for name in slow:
        assert np.array_equal(fast[name], slow[name]), name


@pytest.mark.parametrize("exact", [True, False])
def test_noisy_lines_match_the_direct_computation(exact: bool) -> None:
    config = DetectConfig()
    values = _section(300, 260, seed=3)
    std = float(values[::4, ::4].std())
    dtype = np.float32 if exact else np.float64
    for axis in (0, 1):
        fast = _noisy_lines(values, values.astype(dtype) ** 2, axis, 8, config, std, dtype)
        direct = _direct_noisy_lines(values, axis, 8, config, std)
        assert np.array_equal(fast, direct)
        assert fast.any() and not fast.all()


def test_measured_once_then_excluded_equals_a_fresh_search() -> None:
    config = DetectConfig()
    values = _section(256, 256, seed=5)
    values[100:180, 90:200] = 0.0  # a black hole
    band = np.zeros(values.shape, bool)
    band[120:140] = True
    measured = measure_lost(values, None, config, saturation=250.0, integer=True)
    for exclude in (None, band):
        a = lost_from(measured, config, exclude)
        b = find_lost_regions(values, None, config, exclude=exclude, saturation=250.0)
        assert np.array_equal(a.cells, b.cells) and np.array_equal(a.core, b.core)
        assert a.fractions == b.fractions


def test_shared_squares_and_products_change_nothing() -> None:
    from emrepair.detection.lost_lines import _stripe_lines
    from emrepair.detection.lost_sums import _products

    config = DetectConfig()
    values = _section(256, 192, seed=7)
    squares = values * values
    products = _products(values, 8, squares)
    assert products is not None and _products(values[:250], 8, squares[:250]) is None
    shared, alone = _cell_sums(values, 8, True, squares, products), _cell_sums(values, 8, True)
    for name in alone:
        assert np.array_equal(shared[name], alone[name]), name
    args = (values, 8, config, 140.0, float(values[::4, ::4].std()), (0.0, 255.0), np.float32)
    for got, want in zip(_stripe_lines(*args, squares, products), _stripe_lines(*args)):
        assert np.array_equal(got, want) and got.any()
