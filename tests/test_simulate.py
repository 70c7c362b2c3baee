"""Tests of the missing-section and fold simulators."""

from __future__ import annotations

import numpy as np
import pytest

from emrepair.simulate import MISSING_KINDS, FoldParams, simulate_fold, simulate_missing


def _texture(dtype: np.dtype, shape: tuple[int, int] = (96, 128), seed: int = 0) -> np.ndarray:
    """Smooth random texture in the upper part of the dtype's range."""
    rng = np.random.default_rng(seed)
    base = rng.random(shape)
    kernel = np.ones(5) / 5
    base = np.apply_along_axis(np.convolve, 0, base, kernel, "same")
    base = np.apply_along_axis(np.convolve, 1, base, kernel, "same")
    base = 0.3 + 0.6 * (base - base.min()) / (base.max() - base.min())
    if np.dtype(dtype) == np.float32:
        return base.astype(np.float32)
    return (base * np.iinfo(dtype).max).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("kind", MISSING_KINDS)
def test_missing_kinds_keep_dtype_shape_and_look_right(kind: str, dtype: np.dtype) -> None:
    section = _texture(dtype)
    out = simulate_missing(section, kind, np.random.default_rng(1))
    assert out.dtype == section.dtype and out.shape == section.shape
    black = 0
    if kind == "blank":
        assert np.all(out == black)
    elif kind == "saturated":
        assert np.all(out == (np.iinfo(dtype).max if dtype != np.float32 else section.max()))
    elif kind == "constant":
        assert np.unique(out).size == 1 and black < out[0, 0] < section.max()
    elif kind == "noise":
        lag1 = np.corrcoef(out[:, :-1].ravel().astype(float), out[:, 1:].ravel().astype(float))[0, 1]
        assert abs(lag1) < 0.1
    else:
        lost = out == black
        assert 0.5 < lost.mean() < 0.9
        np.testing.assert_array_equal(out[~lost], section[~lost])


def test_missing_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        simulate_missing(_texture(np.uint8), "smudge", np.random.default_rng(0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_fold_shapes_dtypes_and_band(dtype: np.dtype) -> None:
    section = _texture(dtype, (200, 240))
    params = FoldParams(darkness=(1.0, 1.0), contrast_box_prob=0.0, curvature_prob=0.0)
    fold = simulate_fold(section, np.random.default_rng(2), params)
    assert fold.image.dtype == section.dtype and fold.image.shape == section.shape
    assert fold.band_mask.dtype == bool and fold.band_mask.shape == section.shape
    assert fold.displacement.shape == (2, 200, 240) and fold.displacement.dtype == np.float32
    assert 5 <= fold.width_px <= 50
    assert np.all(fold.image[fold.band_mask] == 0)
    assert np.all(fold.image[~fold.band_mask] > 0)
    # the band's area is about its width times the chord length
    x0, y0, x1, y1 = fold.line
    length = np.hypot(x1 - x0, y1 - y0)
    assert fold.band_mask.sum() == pytest.approx(fold.width_px * length, rel=0.2)


def test_fold_line_joins_two_borders_and_is_long() -> None:
    section = _texture(np.uint8, (150, 300))
    for seed in range(10):
        x0, y0, x1, y1 = simulate_fold(section, np.random.default_rng(seed)).line
        on = [v for v in ((x0, y0), (x1, y1))]
        sides = [0 if y == 0 else 1 if x == 299 else 2 if y == 149 else 3 if x == 0 else -1 for x, y in on]
        assert -1 not in sides and sides[0] != sides[1]
        assert np.hypot(x1 - x0, y1 - y0) >= 0.5 * 150


def test_fold_displacement_zero_beyond_reach_and_pulls_toward_band() -> None:
    section = _texture(np.uint8, (256, 256))
    params = FoldParams(line_width=(10, 10), fold_width_max=40, dis_k=(0.1, 0.1), curvature_prob=0.0)
    fold = simulate_fold(section, np.random.default_rng(5), params)
    x0, y0, x1, y1 = fold.line
    yy, xx = np.mgrid[0:256, 0:256]
    dist = np.abs((x1 - x0) * (y0 - yy) - (x0 - xx) * (y1 - y0)) / np.hypot(x1 - x0, y1 - y0)
    magnitude = np.hypot(*fold.displacement)
    assert np.all(magnitude[dist > 41] == 0)
    assert magnitude[(dist > 6) & (dist < 10)].min() > 2.5
    # content is sampled from farther away: the displacement points away from the line
    probe = (dist > 6) & (dist < 30)
    after = np.abs((x1 - x0) * (y0 - (yy + fold.displacement[0])) - (x0 - (xx + fold.displacement[1])) * (y1 - y0))
    after = after / np.hypot(x1 - x0, y1 - y0)
    assert np.all(after[probe] >= dist[probe])


def test_simulators_are_deterministic_with_a_seed() -> None:
    section = _texture(np.uint16, (128, 128))
    a = simulate_fold(section, np.random.default_rng(7))
    b = simulate_fold(section, np.random.default_rng(7))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.displacement, b.displacement)
    assert a.line == b.line
    np.testing.assert_array_equal(
        simulate_missing(section, "tear", np.random.default_rng(3)),
        simulate_missing(section, "tear", np.random.default_rng(3)),
    )


def test_family_b_keeps_dtype_shape_and_is_seeded() -> None:
    from emrepair.simulate.fold_b import simulate_fold_b

    for dtype in (np.uint8, np.uint16, np.float32):
        section = _texture(dtype, (160, 192))
        a = simulate_fold_b(section, np.random.default_rng(3))
        b = simulate_fold_b(section, np.random.default_rng(3))
        assert a.image.dtype == section.dtype and a.image.shape == section.shape
        assert a.band_mask.shape == section.shape and a.band_mask.any()
        assert a.displacement.shape == (2, 160, 192) and a.displacement.dtype == np.float32
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.band_mask, b.band_mask)
        assert not (a.pulled_mask & a.band_mask).any()


@pytest.mark.parametrize("kind, width, darkness", [("thin", (2.0, 4.5), (0.88, 0.98)),
                                                   ("faint", (6.0, 40.0), (0.3, 0.6))])
def test_family_b_kinds_have_their_widths_and_darkness(kind: str, width: tuple, darkness: tuple) -> None:
    from emrepair.simulate.fold_b import FoldBParams, simulate_fold_b

    probs = {"thin": (1.0, 0.0, 0.0), "faint": (0.0, 0.0, 1.0)}[kind]
    params = FoldBParams(kind_probs=probs, two_folds_prob=0.0, knot_prob=0.0, broken_prob=0.0, washout_prob=0.0,
                         rect_prob=0.0, jpeg_prob=0.0, edge_prob=0.0)
    section = np.full((200, 200), 160, np.uint8)
    for seed in range(4):
        fold = simulate_fold_b(section, np.random.default_rng(seed), params)
        info = fold.folds[0]
        assert info.kind == kind and width[0] <= info.width_px <= width[1]
        assert darkness[0] <= info.darkness <= darkness[1]
        # the band is as much darker than the flat section as its darkness says (grain aside)
        level = float(np.median(fold.image[fold.band_mask]))
        assert level == pytest.approx(160 * (1 - info.darkness), abs=12)
        x0, y0, x1, y1 = info.chord
        assert np.hypot(x1 - x0, y1 - y0) >= 0.6 * 200


def test_family_b_makes_two_folds_broken_bands_and_knots() -> None:
    from emrepair.simulate.fold_b import FoldBParams, simulate_fold_b

    section = _texture(np.uint8, (256, 256))
    params = FoldBParams(two_folds_prob=1.0, broken_prob=1.0, knot_prob=1.0, kind_probs=(1.0, 0.0, 0.0))
    fold = simulate_fold_b(section, np.random.default_rng(0), params)
    assert len(fold.folds) == 2
    assert all("broken" in f.features and "knot" in f.features for f in fold.folds)
    # tissue beside the band is pulled toward it: displacement is largest next to the band
    magnitude = np.hypot(*fold.displacement)
    assert magnitude[fold.pulled_mask].max() > 0.5 and fold.pulled_mask.sum() > fold.band_mask.sum()


def test_fold_default_draws_unchanged_and_exponential_pull_reaches_far() -> None:
    section = _texture(np.uint8, (128, 128))
    rng = np.random.default_rng(7)
    simulate_fold(section, rng, FoldParams(pull_decay=None))
    # the next draw after the fold, recorded before pull_decay existed: None draws no extra numbers
    assert rng.random() == pytest.approx(0.4679349528437208, abs=0)
    section = _texture(np.uint8, (256, 256))
    params = FoldParams(line_width=(10, 10), fold_width_max=20, dis_k=(0.2, 0.2), curvature_prob=0.0,
                        pull_decay=(30.0, 30.0))
    fold = simulate_fold(section, np.random.default_rng(5), params)
    x0, y0, x1, y1 = fold.line
    yy, xx = np.mgrid[0:256, 0:256]
    dist = np.abs((x1 - x0) * (y0 - yy) - (x0 - xx) * (y1 - y0)) / np.hypot(x1 - x0, y1 - y0)
    magnitude = np.hypot(*fold.displacement)
    edge = magnitude[(dist > 5.5) & (dist < 6.5)].mean()
    far = magnitude[(dist > 34.5) & (dist < 35.5)].mean()
    assert edge > 2.0
    # beyond the reach (20 px) it still pulls, fading as exp(-30 / 30) from the edge
    assert far == pytest.approx(edge * np.exp(-1.0), rel=0.15)
    linear = simulate_fold(section, np.random.default_rng(5), FoldParams(**{**params.__dict__, "pull_decay": None}))
    assert np.all(np.hypot(*linear.displacement)[dist > 21] == 0)
