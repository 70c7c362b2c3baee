"""Tests of run_detect: report, label masks and previews written from a volume file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from emrepair.errors import OutputError
from emrepair.io import open_volume
from emrepair.pipelines.detect import run_detect
from test_detect import straight_fold, tissue


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    vol = tissue(5, size=256)
    vol[1] = straight_fold(vol[1]).image
    vol[3] = 255
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=vol, chunks=(1, 256, 256))
    return path


def test_run_detect_writes_report_masks_and_previews(stack: Path, tmp_path: Path) -> None:
    report_path, masks_path, preview = tmp_path / "r.json", tmp_path / "masks.h5", tmp_path / "preview"
    report = run_detect(stack, report_path=report_path, masks_path=masks_path, preview_dir=preview)
    assert [(d.z, d.kind) for d in report.defects] == [(1, "fold"), (3, "missing")]
    data = json.loads(report_path.read_text())
    assert data["input"] == str(stack) and data["shape"] == [5, 256, 256]
    with open_volume(masks_path) as masks:
        assert masks.shape == (5, 256, 256) and masks.dtype == np.uint8
        assert np.all(masks.read_section(3) == 1) and np.all(masks.read_section(0) == 0)
        np.testing.assert_array_equal(masks.read_section(1), report.mask(1, (256, 256)))
    pictures = sorted(p.name for p in preview.iterdir())
    assert pictures == ["z00001_fold.png", "z00003_missing.png"]
    image = cv2.imread(str(preview / "z00001_fold.png"))
    assert image.shape[0] == 256 and image.shape[1] == 3 * 256 + 8


def test_run_detect_ome_zarr_labels(stack: Path, tmp_path: Path) -> None:
    masks_path = tmp_path / "masks.ome.zarr"
    run_detect(stack, masks_path=masks_path)
    assert masks_path.exists()


def test_run_detect_refuses_a_file_as_preview_folder(stack: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        run_detect(stack, preview_dir=blocker)
