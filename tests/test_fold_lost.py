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
