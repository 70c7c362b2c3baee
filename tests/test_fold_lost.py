"""Fold or lost tissue (emrepair.detection.lost_or_fold): a near-black fold band of whole rows keeps the
tissue's texture and, given the pixels, is not taken for a dropout stripe; a flat or noise-filled stripe is."""

from __future__ import annotations

import cv2
import numpy as np

from emrepair.detection import DetectConfig
from emrepair.detection.lost_or_fold import band_textured, is_lost_not_fold
from emrepair.detection.lost_regions import find_lost_regions


def _tissue(seed: int = 0, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 2.0)
    return (40 + 180 * (base - base.min()) / (base.max() - base.min())).astype(np.float32)


def _band() -> np.ndarray:
    band = np.zeros((256, 256), bool)
    band[100:130] = True  # a horizontal band across the whole section
    return band


def test_a_textured_black_band_of_whole_rows_is_a_fold_given_its_pixels() -> None:
    values, band = _tissue(), _band()
    values[band] *= 0.06  # near black, as a fold is, but still the tissue beneath
    regions = find_lost_regions(values, None, DetectConfig())
    assert regions.rows is not None and regions.rows[100:130].mean() > 0.5  # the lost search sees a stripe
    assert band_textured(values, band)
    assert is_lost_not_fold(band, regions)  # by the mask alone: a stripe
    assert not is_lost_not_fold(band, regions, values)


def test_flat_and_noise_stripes_stay_lost() -> None:
    band = _band()
    flat = _tissue()
    flat[band] = 0.0
    regions = find_lost_regions(flat, None, DetectConfig())
    assert not band_textured(flat, band)
    assert is_lost_not_fold(band, regions, flat)
    noisy = _tissue()
    noisy[band] = np.random.default_rng(3).uniform(0, 8, int(band.sum())).astype(np.float32)
    assert not band_textured(noisy, band)


def test_a_band_straddling_a_flat_torn_part_is_not_textured() -> None:
    values, band = _tissue(), _band()
    values[:115] = 0.0  # torn away above row 115: half the band is flat black
    assert not band_textured(values, band)


def test_a_band_taking_in_tissue_beside_a_noise_stripe_stays_lost() -> None:
    # a candidate band wider than a noise-filled dropout stripe takes in textured tissue on both sides; only the
    # band's lost part is judged, so the stripe is not taken for a fold
    values = _tissue()
    stripe = np.zeros((256, 256), bool)
    stripe[96:136] = True
    values[stripe] = np.random.default_rng(5).uniform(0, 10, int(stripe.sum())).astype(np.float32)
    band = np.zeros((256, 256), bool)
    band[80:152] = True
    regions = find_lost_regions(values, None, DetectConfig())
    assert is_lost_not_fold(band, regions, values)


def test_a_dark_fill_with_a_few_tissue_pixels_is_not_textured() -> None:
    # an empty film (i.i.d. 0 to 12) whose mask catches a few bright tissue pixels at its edge: on raw values
    # those outliers alone correlate; on ranks the fill stays untextured
    values, band = _tissue(), _band()
    fill = band.copy()
    fill[100:130, 250:] = False  # the band's last columns are tissue
    values[fill] = np.random.default_rng(2).integers(0, 13, int(fill.sum())).astype(np.float32)
    assert not band_textured(values, band)
    values[band] = _tissue(seed=4)[band] * 0.1  # darkened tissue keeps its texture
    assert band_textured(values, band)


def test_a_band_on_thin_lost_rows_is_lost() -> None:
    # a black dropout stripe of 5 rows, narrower than a cell, taken for a fold candidate: it is on lost lines
    values = _tissue()
    values[60:65] = 0.0
    band = np.zeros((256, 256), bool)
    band[59:66] = True
    regions = find_lost_regions(values, None, DetectConfig())
    assert regions.rows is not None and regions.rows[60:65].all() and regions.rows.sum() == 5
    assert is_lost_not_fold(band, regions, values)


def test_a_pocket_left_inside_a_band_over_a_torn_part_is_not_the_far_side() -> None:
    from emrepair.detection.lost_or_fold import _tissue_on_both_sides

    values = _tissue()
    values[:, :40] = 0.0  # torn away from the left border
    regions = find_lost_regions(values, None, DetectConfig())
    band = np.zeros((256, 256), bool)
    band[:, :60] = True  # a candidate drawn over the torn part and a strip of tissue beside it ...
    band[100:140, 43:57] = False  # ... with a small pocket of tissue left inside it (0.8 % of the section)
    assert not _tissue_on_both_sides(band, regions)
    assert is_lost_not_fold(band, regions, values)
    corner = np.zeros((256, 256), bool)  # a fold across a corner: the corner is tissue beyond it
    yy, xx = np.mgrid[0:256, 0:256]
    corner[np.abs(xx + yy - 360) < 8] = True
    assert _tissue_on_both_sides(corner, find_lost_regions(_tissue(), None, DetectConfig()))
