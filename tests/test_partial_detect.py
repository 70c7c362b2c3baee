"""Partly lost sections: lost regions are found as masks, reported as kind 'partial', and set from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import drifting_tissue  # tests/ is on sys.path
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.detection import KIND_LABELS, DetectConfig, DetectionReport, detect_volume
from emrepair.io import ArrayVolume
from emrepair.simulate import PARTIAL_FILLS, PARTIAL_SHAPES, simulate_partial


def tissue(depth: int, size: int = 128, seed: int = 0) -> np.ndarray:
    """EM-like stand-in (helpers.drifting_tissue) at this file's default size."""
    return drifting_tissue(depth, size, seed)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("where", PARTIAL_SHAPES)
@pytest.mark.parametrize("fill", PARTIAL_FILLS)
def test_each_fill_and_shape_is_found_as_a_region(fill: str, where: str) -> None:
    vol = tissue(5, size=160)
    vol[2], lost = simulate_partial(vol[2], fill, where, 0.2, np.random.default_rng(7))
    report = detect_volume(ArrayVolume(vol))
    assert [(d.z, d.kind) for d in report.defects] == [(2, "partial")]
    defect = report.defects[0]
    assert defect.fraction == pytest.approx(lost.mean(), abs=0.08)  # about one 8-px cell along each edge
    found = report.mask(2) == KIND_LABELS["partial"]
    assert iou(found, lost) > 0.6
    assert found[lost].mean() > 0.95  # the region covers what was lost
    assert not report.mask(1).any() and not report.mask(3).any()


def test_a_small_region_is_found_and_a_mostly_lost_section_stays_missing() -> None:
    vol = tissue(6, size=192)
    vol[1], _ = simulate_partial(vol[1], "black", "hole", 0.06, np.random.default_rng(1))
    vol[3], _ = simulate_partial(vol[3], "noise", "border", 0.95, np.random.default_rng(2))
    report = detect_volume(ArrayVolume(vol))
    assert [(d.z, d.kind) for d in report.defects] == [(1, "partial"), (3, "missing")]
    assert np.all(report.mask(3) == KIND_LABELS["missing"])


def test_light_lumens_and_dark_nuclei_are_not_lost() -> None:
    vol = tissue(5, size=160)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:160, 0:160]
    lumen = np.hypot(yy - 60, xx - 70) < 35  # 15 % of the section: light, smooth, with shot noise
    vol[2][lumen] = np.clip(rng.normal(225, 4, lumen.sum()), 0, 255).astype(np.uint8)
    nucleus = np.hypot(yy - 130, xx - 120) < 20
    vol[2][nucleus] = (0.6 * vol[2][nucleus]).astype(np.uint8)
    assert detect_volume(ArrayVolume(vol)).defects == []


def test_thresholds_change_what_is_reported() -> None:
    vol = tissue(5, size=160)
    vol[2], _ = simulate_partial(vol[2], "black", "border", 0.3, np.random.default_rng(4))
    assert detect_volume(ArrayVolume(vol), DetectConfig(min_lost_fraction=0.5)).defects == []
    report = detect_volume(ArrayVolume(vol), DetectConfig(lost_fraction=0.2, min_lost_fraction=0.05))
    assert [(d.z, d.kind) for d in report.defects] == [(2, "missing")]


def test_the_region_survives_the_json_report(tmp_path: Path) -> None:
    vol = tissue(5, size=160)
    vol[2], _ = simulate_partial(vol[2], "white", "hole", 0.2, np.random.default_rng(5))
    report = detect_volume(ArrayVolume(vol))
    report.save(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    entry = data["defects"][0]
    assert entry["kind"] == "partial" and 0.1 < entry["fraction"] < 0.3 and entry["causes"]["flat"] > 0.1
    loaded = DetectionReport.load(tmp_path / "r.json")
    assert np.array_equal(loaded.mask(2), report.mask(2))
    assert np.array_equal(loaded.mask(2, (80, 80)), report.mask(2, (80, 80)))
    entry["region"]["cells"] = "not base64 zlib"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    from emrepair.errors import InputError

    with pytest.raises(InputError):
        DetectionReport.load(tmp_path / "bad.json")


def test_cli_thresholds(tmp_path: Path) -> None:
    vol = tissue(5, size=160)
    vol[2], _ = simulate_partial(vol[2], "black", "border", 0.3, np.random.default_rng(6))
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["raw"] = vol
    runner = CliRunner()
    found = runner.invoke(app, ["detect", str(tmp_path / "in.h5"), "--report", "-", "--no-progress"])
    assert found.exit_code == 0, found.output
    assert [d["kind"] for d in json.loads(found.stdout)["defects"]] == ["partial"]
    raised = runner.invoke(app, ["detect", str(tmp_path / "in.h5"), "--report", "-", "--no-progress",
                                 "--min-lost-fraction", "0.5"])
    assert raised.exit_code == 0 and json.loads(raised.stdout)["defects"] == []
    bad = runner.invoke(app, ["detect", str(tmp_path / "in.h5"), "--missing-fraction", "1.5"])
    assert bad.exit_code == 2 and "--missing-fraction" in bad.output and "Traceback" not in bad.output


def test_clean_real_stacks_have_no_partial_sections(shared_data: Path) -> None:
    """Large light lumens, vessels and nuclei (ssTEM, SBEM, FIB-SEM): never lost regions."""
    for name, zs in (("isbi2012_train.h5", slice(0, 30, 3)), ("vnc_stack1.h5", slice(0, 20, 4)),
                     ("sbem_cdeep3m_val_v2.h5", slice(0, 10, 3)), ("neuroproof_medulla_train2.h5", slice(0, 250, 25))):
        with h5py.File(shared_data / name, "r") as f:
            crop = f["raw"][zs]
        report = detect_volume(ArrayVolume(crop))
        assert [d for d in report.defects if d.kind in ("partial", "missing")] == [], name


def test_a_torn_real_section_is_partial(shared_data: Path) -> None:
    with h5py.File(shared_data / "vnc_stack1.h5", "r") as f:
        crop = f["raw"][4:8, :512, :512]
    crop[1], lost = simulate_partial(crop[1], "black", "border", 0.4, np.random.default_rng(8))
    crop[2], noisy = simulate_partial(crop[2], "noise", "stripe", 0.08, np.random.default_rng(9))
    report = detect_volume(ArrayVolume(crop))
    assert [(d.z, d.kind) for d in report.defects if d.kind != "fold"] == [(1, "partial"), (2, "partial")]
    assert iou(report.mask(1) == 3, lost) > 0.8 and iou(report.mask(2) == 3, noisy) > 0.5


def test_a_small_hole_of_grainy_empty_film_is_found() -> None:
    """An empty film (uniform 0 to 14: each cell too grainy to be flat) over 5 % of a section, in a hole."""
    import cv2

    vol = tissue(5, size=192)
    hole = np.zeros((192, 192), np.uint8)
    cv2.fillPoly(hole, [np.array([[80, 70], [118, 78], [122, 112], [90, 120], [74, 100]], np.int32)], 1)
    hole = hole.astype(bool)
    assert 0.04 < hole.mean() < 0.06
    vol[2][hole] = np.random.default_rng(4).integers(0, 15, int(hole.sum())).astype(np.uint8)
    report = detect_volume(ArrayVolume(vol))
    assert [(d.z, d.kind) for d in report.defects] == [(2, "partial")]
    found = report.mask(2) == KIND_LABELS["partial"]
    assert found[hole].mean() > 0.95 and iou(found, hole) > 0.5


@pytest.mark.parametrize("level", [0, 90, 255])
def test_thin_constant_stripes_are_found_exactly(level: int) -> None:
    """Dropout rows of one value at any level (black, grey, white), 2-5 px each: kept as exact lines, and the
    cells on them are not grown into the tissue."""
    vol = tissue(5, size=160)
    lost = np.zeros((160, 160), bool)
    lost[30:33], lost[90:95], lost[140:142] = True, True, True
    vol[2][lost] = level
    report = detect_volume(ArrayVolume(vol))
    assert [(d.z, d.kind) for d in report.defects] == [(2, "partial")]
    assert iou(report.mask(2) == KIND_LABELS["partial"], lost) == 1.0
