"""The z cue for folds (emrepair.detect.fold_z): a band dark in one section only is confirmed; one that
persists into the neighbours, or a section with one neighbour, is not."""

from __future__ import annotations

import cv2
import numpy as np

from emrepair.detect import DetectConfig
from emrepair.detect.fold_detect import find_folds
from emrepair.detect.fold_geometry import FoldCurve
from emrepair.detect.fold_z import ZCue, band_contrast


def _tissue(seed: int, size: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 2.0)
    return (0.4 + (base - base.min()) / (base.max() - base.min())).astype(np.float32)


def _band(image: np.ndarray, darkness: float) -> np.ndarray:
    out = image.copy()
    out[70:82, :] *= 1 - darkness  # a faint horizontal band 12 px wide
    return out


_CURVE = FoldCurve(np.array([0.0, 75.5]), np.array([1.0, 0.0]), (0.0, 0.0, 0.0), 0.0, 159.0)


def test_band_contrast_measures_the_band_against_its_sides() -> None:
    contrast = band_contrast(_band(_tissue(0), 0.4), _CURVE, 12.0)
    assert 0.25 < float(np.nanmedian(contrast)) < 0.55
    assert abs(float(np.nanmedian(band_contrast(_tissue(0), _CURVE, 12.0)))) < 0.15


def test_a_band_in_one_section_only_is_confirmed_and_a_persisting_one_is_not() -> None:
    own = _band(_tissue(0), 0.4)
    clean = ZCue.build(own, (_tissue(1), _tissue(2)))
    assert clean is not None and clean.confirms(_CURVE, 12.0)[0]
    persisting = ZCue.build(own, (_band(_tissue(1), 0.4), _band(_tissue(2), 0.4)))
    assert persisting is not None and not persisting.confirms(_CURVE, 12.0)[0]
    # one neighbour is too weak a witness; a blank one or another shape is no witness
    assert ZCue.build(own, (None, _tissue(1))) is None
    assert ZCue.build(own, (np.zeros_like(own), _tissue(1))) is None
    assert ZCue.build(own, (_tissue(1)[:100], _tissue(2))) is None


def test_find_folds_with_neighbours_flags_no_clean_section() -> None:
    sections = [_tissue(s, 256) for s in range(3)]
    assert find_folds(sections[1], 0.0, float(np.median(sections[1])), DetectConfig(),
                      neighbours=(sections[0], sections[2])) == []
