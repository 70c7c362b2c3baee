"""The z cue for folds (emrepair.detection.fold_z): a band dark in one section only is confirmed; one that
persists into the neighbours, or a section with one neighbour, is not."""

from __future__ import annotations

import cv2
import numpy as np

from emrepair.detection import DetectConfig
from emrepair.detection.fold_detect import find_folds
from emrepair.detection.fold_geometry import FoldCurve
from emrepair.detection.fold_z import ZCue, band_contrast


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


def _faint_fold(darkness: float, seed: int):
    """A tissue stack of three and a straight family-A fold of ``darkness`` in its middle section."""
    from test_detect import tissue  # the EM-like stand-in of the detector tests

    from emrepair.simulate import FoldParams, simulate_fold

    vol = tissue(3, size=256).astype(np.float32)
    params = FoldParams(line_width=(10, 10), darkness=(darkness, darkness), contrast_box_prob=0.0, curvature_prob=0.0)
    return vol, simulate_fold(vol[1], np.random.default_rng(seed), params)


def test_a_fold_too_faint_for_the_section_alone_is_found_with_its_neighbours() -> None:
    vol, fold = _faint_fold(0.3, 2)  # only 30 % darker than the tissue
    image = fold.image.astype(np.float32)
    median = float(np.median(image))
    assert find_folds(image, 0.0, median, DetectConfig()) == []
    found = find_folds(image, 0.0, median, DetectConfig(), neighbours=(vol[0], vol[2]))
    assert len(found) == 1 and (found[0].mask & fold.band_mask).sum() > 0.5 * fold.band_mask.sum()


def test_a_band_that_persists_into_the_neighbours_is_not_a_fold() -> None:
    vol, fold = _faint_fold(0.5, 4)
    image = fold.image.astype(np.float32)
    median = float(np.median(image))
    assert len(find_folds(image, 0.0, median, DetectConfig(), neighbours=(vol[0], vol[2]))) == 1
    dim = np.where(fold.band_mask, 0.5, 1.0).astype(np.float32)  # the same dark band in both neighbours
    assert find_folds(image, 0.0, median, DetectConfig(), neighbours=(vol[0] * dim, vol[2] * dim)) == []


def test_a_neighbour_lost_where_the_band_lies_is_no_witness_there() -> None:
    own = _band(_tissue(0), 0.4)
    torn = _tissue(1)
    torn[55:100, :] = 0.0  # black beyond a torn edge, all along the band
    cue = ZCue.build(own, (torn, _tissue(2)))
    assert cue is not None and not cue.confirms(_CURVE, 12.0)[0]  # one witness left is too weak, there too


def test_a_fold_broken_by_a_long_gap_is_joined_only_with_its_neighbours() -> None:
    vol, fold = _faint_fold(0.9, 2)
    image = fold.image.astype(np.float32)
    x0, y0, x1, y1 = fold.line
    yy, xx = np.mgrid[0:256, 0:256]
    along = ((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2)
    gap = (along > 0.4) & (along < 0.6)  # a fifth of the fold untouched
    image[gap] = vol[1][gap]
    median = float(np.median(image))
    assert find_folds(image, 0.0, median, DetectConfig()) == []
    found = find_folds(image, 0.0, median, DetectConfig(), neighbours=(vol[0], vol[2]))
    band = fold.band_mask & ~gap
    assert len(found) == 1 and (found[0].mask & band).sum() > 0.5 * band.sum()
