"""fix on partly lost sections: only the lost region (and a seam of at most 16 px) changes; the rest is kept."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from helpers import read_all, write_h5
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.detection import KIND_LABELS, DetectionReport, detect_volume
from emrepair.detection.lost_regions import LostRegions
from emrepair.distributed.region_repair import (
    PLATEAU_PX,
    SEAM_PX,
    _fill_in_seam,
    fuse_region,
    seam_weights,
)
from emrepair.io import ArrayVolume
from emrepair.models import get_spec
from emrepair.pipelines.demo import sample_path
from emrepair.pipelines.fix import FixOptions, run_fix
from emrepair.simulate import simulate_partial

runner = CliRunner()


def tissue(depth: int, size: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth random texture drifting slowly in z, with a little pixel noise."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((size + 8 * depth, size + 8 * depth)).astype(np.float32), (0, 0), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    stack = np.stack([base[2 * z:2 * z + size, 3 * z:3 * z + size] for z in range(depth)])
    return np.clip(255 * (0.3 + 0.5 * stack + rng.normal(0, 0.005, stack.shape)), 0, 255).astype(np.uint8)


def distance_from(region: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def damaged(truth: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Regions lost in the first, a middle and the last section."""
    vol = truth.copy()
    lost = {}
    for z, (fill, where, fraction) in {0: ("white", "hole", 0.1), 3: ("black", "border", 0.35),
                                      7: ("noise", "stripe", 0.15)}.items():
        vol[z], lost[z] = simulate_partial(vol[z], fill, where, fraction, np.random.default_rng(z))
    return vol, lost


def test_fix_keeps_every_pixel_beyond_the_seam(tmp_path: Path) -> None:
    truth = tissue(8, size=160)
    vol, lost = damaged(truth)
    src = write_h5(tmp_path / "in.h5", vol)
    report = detect_volume(ArrayVolume(vol))
    assert [(d.z, d.kind) for d in report.defects] == [(0, "partial"), (3, "partial"), (7, "partial")]
    result = run_fix(src, str(tmp_path / "out.h5"), FixOptions(model="linear", masks_path=str(tmp_path / "m.h5")))
    out, labels = read_all(tmp_path / "out.h5"), read_all(tmp_path / "m.h5")
    assert result.synthesized == [0, 3, 7]
    for z in (0, 3, 7):
        region = report.mask(z) == KIND_LABELS["partial"]
        far = distance_from(region) >= SEAM_PX
        assert np.array_equal(out[z][far], vol[z][far]), z  # bit-identical beyond the seam
        assert (labels[z][far] == 0).all() and set(np.unique(labels[z])) == {0, KIND_LABELS["partial"]}
        changed = out[z] != vol[z]
        np.testing.assert_array_equal(labels[z] > 0, changed)  # the masks label exactly what changed
        assert changed[lost[z]].mean() > 0.9
        error = lambda image: float(np.abs(image.astype(float) - truth[z])[lost[z]].mean())
        # the lost region is restored (at the stack ends from the one neighbour, which has drifted)
        assert error(out[z]) < (0.5 if z == 3 else 0.8) * error(vol[z])
    for z in (1, 2, 4, 5, 6):
        assert np.array_equal(out[z], vol[z])


def test_the_seam_has_no_edge_and_matches_the_section_contrast() -> None:
    truth = tissue(1, size=128)[0].astype(np.float32)
    region_cells = np.zeros((16, 16), bool)
    region_cells[4:10, 5:12] = True
    region = LostRegions(region_cells, 8, (128, 128), {})
    own = truth + 30.0  # this section is brighter than its neighbours, from which the synthesized one comes
    own[region.mask()] = 0.0
    weights, distance = seam_weights(region, slice(0, 128), slice(0, 128), (128, 128))
    assert weights[region.mask()].min() == 1.0 and weights[distance >= SEAM_PX].max() == 0.0
    fused, changed = fuse_region(own.astype(np.uint8), truth.astype(np.uint8), weights, distance)
    assert not changed[distance >= SEAM_PX].any()
    inside = fused[region.mask()].astype(float)
    assert abs(inside.mean() - (truth[region.mask()].mean() + 30)) < 4  # brought to the section's own level
    # across the seam, neighbouring pixels differ no more than they do inside the tissue
    steps = np.abs(np.diff(fused.astype(float), axis=1))
    seam = (distance > 0) & (distance < SEAM_PX)
    assert steps[seam[:, 1:]].mean() < 1.5 * steps[(distance >= SEAM_PX)[:, 1:]].mean() + 1


def test_fill_beyond_the_region_cells_is_synthesized_fully() -> None:
    """A black sliver of a torn edge that reaches past the region's cells into the seam holds the fill: it is
    replaced by the synthesized pixels, not blended with them; tissue in the seam is still blended, and nothing
    beyond the seam changes."""
    truth = tissue(1, size=128)[0]
    region_cells = np.zeros((16, 16), bool)
    region_cells[:, :3] = True  # torn from the left border: columns 0-23
    region = LostRegions(region_cells, 8, (128, 128), {})
    own = truth.copy()
    own[:, :24] = 0
    own[40:60, 24:36] = 0  # a sliver of the same black fill, 1-12 px beyond the cells
    weights, distance = seam_weights(region, slice(0, 128), slice(0, 128), (128, 128))
    fused, changed = fuse_region(own, truth, weights, distance)
    assert np.array_equal(fused[40:60, 24:36], truth[40:60, 24:36])
    tissue_seam = (distance > PLATEAU_PX) & (distance < SEAM_PX) & (own > 0)
    assert np.abs(fused[tissue_seam].astype(int) - own[tissue_seam]).max() <= 1  # synth == truth == own there
    assert not changed[distance >= SEAM_PX].any()
    noisy = truth.copy()
    noisy[:, :24] = np.random.default_rng(1).integers(0, 256, (128, 24))  # noise is no fill: the seam is blended
    weights2 = _fill_in_seam(noisy, weights, distance, SEAM_PX)
    assert np.array_equal(weights2, weights)


def test_a_level_offset_is_matched_only_when_it_is_beyond_chance() -> None:
    """The synthesized pixels are brought to the section's own level when the two differ by far more than their
    structures do by chance; a difference of the order of the chance one is left alone."""
    from emrepair.distributed.region_repair import _significant

    rng = np.random.default_rng(3)
    own = rng.normal(120, 30, (96, 96))
    synth = rng.normal(120, 30, (96, 96))  # another section's structure: means differ by chance
    ring = np.ones(own.shape, bool)
    chance = float(own.mean() - synth.mean())
    assert _significant(chance, synth, own, ring) == 0.0
    assert _significant(20.0, synth, own, ring) == 20.0  # 20 grey levels over 9216 px: far beyond chance
    assert _significant(20.0, synth, own, np.eye(96, dtype=bool)) == 0.0  # ... but not over a few pixels


def test_a_report_without_regions_replaces_the_section_whole(tmp_path: Path) -> None:
    truth = tissue(6, size=128)
    vol, _ = simulate_partial(truth[2], "black", "border", 0.3, np.random.default_rng(1))
    stack = truth.copy()
    stack[2] = vol
    src = write_h5(tmp_path / "in.h5", stack)
    report = detect_volume(ArrayVolume(stack))
    data = report.to_dict()
    del data["defects"][0]["region"]
    (tmp_path / "r.json").write_text(json.dumps(data))
    run_fix(src, str(tmp_path / "out.h5"), FixOptions(model="linear", report_path=str(tmp_path / "r.json")))
    out = read_all(tmp_path / "out.h5")
    assert (out[2] != stack[2]).mean() > 0.9


def test_dry_run_plans_the_region(tmp_path: Path) -> None:
    truth = tissue(6, size=128)
    truth[2], _ = simulate_partial(truth[2], "black", "border", 0.3, np.random.default_rng(1))
    src = write_h5(tmp_path / "in.h5", truth)
    result = runner.invoke(app, ["fix", src, "--dry-run", "--model", "linear", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    assert run["kinds"] == ["partial"] and "region" in run["folds"]["2"]
    higher = runner.invoke(app, ["fix", src, "--dry-run", "--model", "linear", "--json", "--no-progress",
                                 "--min-lost-fraction", "0.6"])
    assert higher.exit_code == 0 and json.loads(higher.stdout)["runs"] == []


@pytest.mark.skipif(not get_spec("sff").has_weights(), reason="weights/sff.pt is not present")
def test_a_folded_section_with_a_lost_region_gets_both(tmp_path: Path) -> None:
    with h5py.File(sample_path(), "r") as f:
        raw = f["raw"][:]
    report = detect_volume(ArrayVolume(raw))
    fold = report.defect_at(13)
    assert fold is not None and fold.kind == "fold"
    hole = np.zeros(raw.shape[1:], bool)
    band = report.mask(13) == KIND_LABELS["fold"]
    hole[20:70, 20:80] = True
    assert not (hole & band).any()
    raw[13][hole] = 255
    src = write_h5(tmp_path / "in.h5", raw, (40.0, 10.0, 10.0))
    report = detect_volume(ArrayVolume(raw))
    assert sorted(d.kind for d in report.defects_at(13)) == ["fold", "partial"]
    report.save(tmp_path / "r.json")
    run_fix(src, str(tmp_path / "out.h5"), FixOptions(model="linear", report_path=str(tmp_path / "r.json"),
                                                      masks_path=str(tmp_path / "m.h5")))
    out, labels = read_all(tmp_path / "out.h5")[13], read_all(tmp_path / "m.h5")[13]
    assert set(np.unique(labels)) == {0, KIND_LABELS["fold"], KIND_LABELS["partial"]}
    assert (out[hole] != 255).mean() > 0.95  # the hole is filled
    assert (labels[hole] == KIND_LABELS["partial"]).all()
    region = DetectionReport.load(tmp_path / "r.json").mask(13) == KIND_LABELS["partial"]
    untouched = labels == 0
    assert np.array_equal(out[untouched], raw[13][untouched])
    assert not (labels[distance_from(region) >= SEAM_PX] == KIND_LABELS["partial"]).any()
    assert untouched.mean() > 0.5  # most of the section is its own


def test_region_by_region_repair_keeps_the_same_pixels(tmp_path: Path) -> None:
    """Huge sections are written in square regions: the seam is measured across region borders all the same."""
    truth = tissue(6, size=160)
    vol = truth.copy()
    vol[2], _ = simulate_partial(vol[2], "black", "hole", 0.25, np.random.default_rng(3))
    src = write_h5(tmp_path / "in.h5", vol)
    report = detect_volume(ArrayVolume(vol))
    run_fix(src, str(tmp_path / "whole.h5"), FixOptions(model="linear"))
    run_fix(src, str(tmp_path / "tiles.h5"), FixOptions(model="linear", region_size=48))
    whole, tiles = read_all(tmp_path / "whole.h5")[2], read_all(tmp_path / "tiles.h5")[2]
    far = distance_from(report.mask(2) == KIND_LABELS["partial"]) >= SEAM_PX
    assert np.array_equal(tiles[far], vol[2][far]) and np.array_equal(whole[far], vol[2][far])
    assert np.abs(tiles.astype(int) - whole.astype(int)).max() <= 2  # linear needs no context: the same repair
