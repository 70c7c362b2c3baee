"""Staining precipitates and regional contrast changes: found as their own kinds against the neighbours."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import drifting_tissue, read_all, write_h5
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.detection import KIND_LABELS, DetectionReport, detect_volume
from emrepair.detection.damage_config import DamageConfig
from emrepair.io import ArrayVolume
from emrepair.simulate.damage import (
    CONTRAST_MODES,
    simulate_contrast,
    simulate_precipitates,
)

runner = CliRunner()


def tissue(depth: int = 5, size: int = 192, seed: int = 0) -> np.ndarray:
    """EM-like stand-in (helpers.drifting_tissue) at this file's default size."""
    return drifting_tissue(depth, size, seed)


def _disc(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, (centre[1], centre[0]), radius, 1, -1)
    return mask.astype(bool)


def _kinds(report: DetectionReport) -> list[tuple[int, str]]:
    return [(d.z, d.kind) for d in report.defects + report.marks]


def test_a_dark_blob_on_one_section_is_a_precipitate() -> None:
    vol = tissue()
    blob = _disc(vol.shape[1:], (90, 100), 14)
    rng = np.random.default_rng(1)
    vol[2][blob] = rng.integers(2, 20, int(blob.sum()))
    report = detect_volume(ArrayVolume(vol), damage=DamageConfig())
    assert _kinds(report) == [(2, "precipitate")]
    found = report.mask(2) == KIND_LABELS["precipitate"]
    assert found[blob].mean() > 0.9 and found[~blob].mean() < 0.01
    assert report.defects == [] and report.defective_z() == []  # a mark, not a repair target
    again = DetectionReport.from_dict(report.to_dict())
    assert np.array_equal(again.mask(2), report.mask(2)) and [d.kind for d in again.marks] == ["precipitate"]


def test_a_dark_blob_that_persists_in_z_is_no_precipitate() -> None:
    vol = tissue()
    for z in range(vol.shape[0]):  # the same dark body in every section, drifting like the tissue
        vol[z][_disc(vol.shape[1:], (90 - 2 * z, 100 - 3 * z), 14)] = 10
    report = detect_volume(ArrayVolume(vol), damage=DamageConfig())
    assert "precipitate" not in {d.kind for d in report.marks}


def test_a_thin_dark_line_is_no_precipitate() -> None:
    vol = tissue()
    cv2.line(vol[2], (20, 40), (170, 60), 5, 3)
    report = detect_volume(ArrayVolume(vol), damage=DamageConfig())
    assert "precipitate" not in {d.kind for d in report.marks}


@pytest.mark.parametrize("mode", ["dim", "bright"])
def test_a_dimmed_or_brightened_rectangle_is_a_contrast_region(mode: str) -> None:
    vol = tissue()
    result = simulate_contrast(vol[2], np.random.default_rng(3), fraction=0.2, mode=mode)
    vol[2] = result.image
    report = detect_volume(ArrayVolume(vol), damage=DamageConfig())
    assert (2, "contrast") in _kinds(report)
    assert {z for z, _ in _kinds(report)} == {2}
    found = report.mask(2) == KIND_LABELS["contrast"]
    iou = (found & result.mask).sum() / (found | result.mask).sum()
    assert iou > 0.5


def test_clean_tissue_and_a_brighter_section_are_not_flagged() -> None:
    vol = tissue()
    vol[3] = np.clip(vol[3].astype(np.int32) + 30, 0, 255).astype(np.uint8)  # the whole section: not regional
    report = detect_volume(ArrayVolume(vol), damage=DamageConfig())
    assert _kinds(report) == []
    assert all(s["precipitate_fraction"] == 0 and s["contrast_fraction"] == 0 for s in report.sections)


def test_without_damage_config_neither_is_looked_for() -> None:
    vol = tissue()
    vol[2][_disc(vol.shape[1:], (90, 100), 14)] = 5
    report = detect_volume(ArrayVolume(vol))
    assert _kinds(report) == []
    assert "precipitate_fraction" not in report.sections[0]


def test_simulators_give_their_truth() -> None:
    section = tissue(1)[0]
    rng = np.random.default_rng(0)
    result = simulate_precipitates(section, rng, count=3)
    assert result.parts and result.mask.any()
    assert np.array_equal(result.image[~result.mask], section[~result.mask])
    blobs = np.any(result.parts, axis=0)
    assert result.image[blobs].mean() < 0.5 * section[blobs].mean()
    for mode in CONTRAST_MODES:
        changed = simulate_contrast(section, rng, fraction=0.15, mode=mode)
        assert 0.1 < changed.mask.mean() < 0.2
        assert np.array_equal(changed.image[~cv2.dilate(changed.mask.astype(np.uint8), np.ones((9, 9))).astype(bool)],
                              section[~cv2.dilate(changed.mask.astype(np.uint8), np.ones((9, 9))).astype(bool)])


def test_damage_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        DamageConfig(precipitate_dark=1.5)
    with pytest.raises(ValueError):
        DamageConfig(contrast_min_change=0.0)


def test_cli_reports_masks_and_thresholds(tmp_path: Path) -> None:
    vol = tissue()
    blob = _disc(vol.shape[1:], (90, 100), 14)
    vol[2][blob] = np.random.default_rng(1).integers(2, 20, int(blob.sum()))
    src = write_h5(tmp_path / "in.h5", vol)
    result = runner.invoke(app, ["detect", src, "--report", str(tmp_path / "r.json"), "--masks",
                                 str(tmp_path / "m.h5"), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["defects"] == [] and [(d["z"], d["kind"]) for d in report["marks"]] == [(2, "precipitate")]
    labels = read_all(tmp_path / "m.h5")
    assert (labels[2][blob] == KIND_LABELS["precipitate"]).mean() > 0.9 and not labels[[0, 1, 3, 4]].any()
    quiet = runner.invoke(app, ["detect", src, "--no-damage", "--report", "-", "--no-progress"])
    assert quiet.exit_code == 0 and "marks" not in json.loads(quiet.output)
    strict = runner.invoke(app, ["detect", src, "--precipitate-dark", "0.01", "--report", "-", "--no-progress"])
    assert strict.exit_code == 0
    assert "precipitate" not in {d["kind"] for d in json.loads(strict.output).get("marks", [])}
    for bad in (["--precipitate-dark", "1.5"], ["--no-damage", "--contrast-min-change", "0.3"]):
        refused = runner.invoke(app, ["detect", src, *bad, "--no-progress"])
        assert refused.exit_code != 0 and "Traceback" not in refused.output


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_component_boxes_equal_opencvs(seed: int) -> None:
    from emrepair.detection.precipitates import _components

    rng = np.random.default_rng(seed)
    mask = (cv2.GaussianBlur(rng.random((97, 131)).astype(np.float32), (0, 0), 2.0) > 0.52).astype(np.uint8)
    count, labels, stats = _components(mask)
    ref_count, ref_labels, ref_stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    assert count == ref_count > 2
    assert np.array_equal(labels, ref_labels)
    assert np.array_equal(stats[1:], ref_stats[1:])
    assert _components(np.zeros((9, 9), np.uint8))[0] == 1
