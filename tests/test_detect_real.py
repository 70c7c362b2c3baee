"""Detector tests on small crops of the real stacks in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from emrepair.detection import detect_volume
from emrepair.io import ArrayVolume
from emrepair.simulate import FoldParams, simulate_fold, simulate_missing

pytestmark = pytest.mark.data


def isbi(shared_data: Path, zs: slice) -> np.ndarray:
    with h5py.File(shared_data / "isbi2012_train.h5", "r") as f:
        return f["raw"][zs]


@pytest.mark.parametrize("zs", [slice(8, 11), slice(15, 18)])
def test_clean_crops_with_shifts_and_contrast_changes_have_no_defects(shared_data: Path, zs: slice) -> None:
    """Slice 8 is darker and unevenly lit, 9->10 shifted, 15-17 contrast-stretched: none are defects."""
    crop = isbi(shared_data, zs)
    assert detect_volume(ArrayVolume(crop)).defects == []
    assert detect_volume(ArrayVolume(crop[:, 100:356, 50:306])).defects == []


def test_injected_defects_in_a_real_crop_are_found(shared_data: Path) -> None:
    crop = isbi(shared_data, slice(14, 20)).copy()
    rng = np.random.default_rng(0)
    fold = simulate_fold(crop[1], rng, FoldParams(line_width=(8, 30)))
    crop[1] = fold.image
    crop[3] = simulate_missing(crop[3], "noise", rng)
    crop[4] = simulate_missing(crop[4], "tear", rng)
    report = detect_volume(ArrayVolume(crop))
    assert [(d.z, d.kind) for d in report.defects] == [(1, "fold"), (3, "missing"), (4, "partial")]
    band = report.mask(1, crop.shape[1:]) == 2
    assert (band & fold.band_mask).sum() / (band | fold.band_mask).sum() > 0.6


def test_fib_sem_crop_is_clean(shared_data: Path) -> None:
    with h5py.File(shared_data / "neuroproof_medulla_train1.h5", "r") as f:
        crop = f["raw"][100:108]
    assert detect_volume(ArrayVolume(crop)).defects == []
