"""Two folds in one section (emrepair.detection.fold_detect): a wide band gives many Hough segments, and the
second, shorter fold is still followed and found."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emrepair.detection import DetectConfig
from emrepair.detection.fold_detect import find_folds, fold_band_mask


def _tissue(seed: int, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 2.0)
    return (0.4 + (base - base.min()) / (base.max() - base.min())).astype(np.float32)


@pytest.mark.parametrize("wide, thin", [(24, 3), (30, 10)])
def test_a_second_shorter_fold_beside_a_wide_one_is_found(wide: int, thin: int) -> None:
    image = _tissue(1)
    first = np.zeros(image.shape, np.uint8)
    cv2.line(first, (0, 60), (255, 90), 1, wide)
    second = np.zeros(image.shape, np.uint8)
    cv2.line(second, (120, 255), (255, 130), 1, thin)  # across a corner: shorter than the first
    image[first > 0] *= 0.1
    image[second > 0] *= 0.15
    folds = find_folds(image, 0.0, float(np.median(image)), DetectConfig())
    assert len(folds) == 2
    band = fold_band_mask(folds, image.shape, max(image.shape))
    truth = (first > 0) | (second > 0)
    assert (band & truth).sum() / (band | truth).sum() > 0.6
    assert band[second > 0].mean() > 0.6  # the second band is masked too, not only the first


def test_a_clean_section_has_no_fold() -> None:
    assert find_folds(_tissue(2), 0.0, float(np.median(_tissue(2))), DetectConfig()) == []
