"""Thin near-black fold lines (emrepair.detection.fold_detect): a 2-3 px line crossing the section, bowed
by about 10 % of its length and with a knot, is followed from its Hough segment outwards and its band is masked."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emrepair.detection import DetectConfig
from emrepair.detection.fold_detect import find_folds, fold_band_mask


def _tissue(seed: int, size: int = 512) -> np.ndarray:
    """Smooth texture with dark membrane-like ridges (the zero crossings of band-passed noise)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((size, size)).astype(np.float32)
    coarse = cv2.GaussianBlur(noise, (0, 0), 6.0) - cv2.GaussianBlur(noise, (0, 0), 12.0)
    ridges = np.abs(coarse) < 0.15 * np.abs(coarse).std()
    image = 0.6 + 0.4 * cv2.GaussianBlur(noise, (0, 0), 2.0)
    image[ridges] *= 0.45
    return image.astype(np.float32)


def _curved_line(size: int, width: int, bow: float) -> np.ndarray:
    """A line from the top border to the bottom one, bowed by ``bow`` px at its middle, with a knot."""
    ys = np.arange(size, dtype=np.float32)
    t = ys / (size - 1)
    xs = 0.3 * size + 0.3 * size * t + 4 * bow * t * (1 - t)
    mask = np.zeros((size, size), np.uint8)
    pts = np.stack([xs, ys], axis=1).round().astype(np.int32)
    cv2.polylines(mask, [pts], False, 1, width)
    middle = pts[size // 2]
    cv2.circle(mask, (int(middle[0]), int(middle[1])), 3 * width, 1, -1)  # where the film bunched
    return mask > 0


@pytest.mark.parametrize("width, bow", [(2, 45.0), (2, 60.0), (3, 45.0)])
def test_a_bowed_thin_line_with_a_knot_is_found_and_masked(width: int, bow: float) -> None:
    image = _tissue(3)
    line = _curved_line(image.shape[0], width, bow)
    image[line] *= 0.08
    folds = find_folds(image, 0.0, float(np.median(image)), DetectConfig())
    assert folds, "the thin line was not found"
    band = fold_band_mask(folds, image.shape, max(image.shape))
    assert band[line].mean() > 0.8  # the band covers the line (the knot included) ...
    assert band.sum() < 3 * line.sum()  # ... without a corridor drawn around it


def test_membrane_like_ridges_alone_are_no_fold() -> None:
    image = _tissue(4)
    assert find_folds(image, 0.0, float(np.median(image)), DetectConfig()) == []


def _wavy_line(size: int, width: int, amplitude: float, periods: float) -> np.ndarray:
    """A line from the top border to the bottom one that wanders sideways as a sine of ``amplitude`` px."""
    ys = np.arange(size, dtype=np.float32)
    xs = 0.4 * size + 0.1 * size * ys / size + amplitude * np.sin(2 * np.pi * periods * ys / size)
    mask = np.zeros((size, size), np.uint8)
    cv2.polylines(mask, [np.stack([xs, ys], axis=1).round().astype(np.int32)], False, 1, width)
    return mask > 0


@pytest.mark.parametrize("seed", [5, 6])
def test_a_thin_line_that_wanders_is_found_from_its_component(seed: int) -> None:
    image = _tissue(seed)
    line = _wavy_line(image.shape[0], 2, 6.0, 2.0)  # two periods, 6 px to each side: no long straight piece
    image[line] *= 0.08
    folds = find_folds(image, 0.0, float(np.median(image)), DetectConfig())
    assert folds, "the wandering line was not found"
    assert fold_band_mask(folds, image.shape, max(image.shape))[line].mean() > 0.6
