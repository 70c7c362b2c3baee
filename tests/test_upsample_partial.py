"""upsample-z on partly lost sections: only the lost region (and a seam of at most 16 px) of an input section is
synthesized; its other pixels land bit-identical at output z * factor, and the masks and provenance say so."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
from helpers import drifting_tissue, read_all, write_h5
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.detection import KIND_LABELS, detect_volume
from emrepair.distributed.region_repair import SEAM_PX
from emrepair.io import ArrayVolume
from emrepair.pipelines.upsample import UpsampleOptions, run_upsample
from emrepair.pipelines.upsample.plan import INTERPOLATED_LABEL
from emrepair.simulate import simulate_partial

FACTOR = 2


def far_from(region: np.ndarray) -> np.ndarray:
    """Pixels at least SEAM_PX from ``region``."""
    return cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) >= SEAM_PX


def damaged(depth: int = 6, size: int = 128) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """A drifting-tissue stack with a lost border in section 2 and a lost hole in the last section, and a
    missing (blank) section 4; (truth, damaged stack, {z: lost pixels})."""
    truth = drifting_tissue(depth, size)
    vol = truth.copy()
    lost = {}
    for z, (fill, where, fraction) in {2: ("black", "border", 0.3), depth - 1: ("white", "hole", 0.12)}.items():
        vol[z], lost[z] = simulate_partial(vol[z], fill, where, fraction, np.random.default_rng(z))
    vol[4] = 0
    return truth, vol, lost


def test_upsample_keeps_the_real_pixels_of_partly_lost_sections(tmp_path: Path) -> None:
    truth, vol, lost = damaged()
    report = detect_volume(ArrayVolume(vol))
    assert sorted((d.z, d.kind) for d in report.defects) == [(2, "partial"), (4, "missing"), (5, "partial")]
    src = write_h5(tmp_path / "in.h5", vol)
    out_path, masks_path, summary = tmp_path / "up.h5", tmp_path / "m.h5", tmp_path / "run.json"
    result = run_upsample(src, str(out_path), UpsampleOptions(factor=FACTOR, model="linear", device="cpu",
                                                              masks_path=str(masks_path),
                                                              summary_path=str(summary)))
    assert result.repaired_input == [2, 4, 5] and result.region_repaired_input == [2, 5]
    out, labels = read_all(out_path), read_all(masks_path)
    assert out.shape == labels.shape == ((vol.shape[0] - 1) * FACTOR + 1, *vol.shape[1:])
    for z in (2, 5):
        region = report.mask(z) == KIND_LABELS["partial"]
        far = far_from(region)
        assert far.mean() > 0.3, z
        section, label = out[FACTOR * z], labels[FACTOR * z]
        assert np.array_equal(section[far], vol[z][far]), z  # bit-identical beyond the seam
        assert set(np.unique(label)) == {0, KIND_LABELS["partial"]} and not label[far].any()
        np.testing.assert_array_equal(label > 0, section != vol[z])  # the masks label exactly what changed
        errors = [float(np.abs(image.astype(float) - truth[z])[lost[z]].mean()) for image in (section, vol[z])]
        assert errors[0] < 0.8 * errors[1], z  # the lost region is restored from the neighbours
    assert (labels[FACTOR * 4] == KIND_LABELS["missing"]).all()  # a missing section is still replaced whole
    for z in (0, 1, 3):
        np.testing.assert_array_equal(out[FACTOR * z], vol[z])
        assert not labels[FACTOR * z].any()
    assert all((labels[z] == INTERPOLATED_LABEL).all() for z in range(1, out.shape[0], FACTOR))
    # The sections interpolated beside a partly lost one come from it as repaired, not from its lost pixels.
    halfway = (out[2 * FACTOR].astype(float) + out[3 * FACTOR]) / 2
    assert np.abs(out[2 * FACTOR + 1] - halfway).max() <= 0.5 + 1e-3
    with h5py.File(out_path) as f:
        provenance = f["raw"].attrs["emrepair"]
    provenance = json.loads(provenance) if isinstance(provenance, (str, bytes)) else provenance
    assert provenance["repaired_sections"] == [4, 8, 10]
    assert provenance["region_repaired_sections"] == [4, 10]
    assert provenance["region_repaired_input_sections"] == [2, 5]
    assert "region_repaired_sections" in provenance["synthesized_pixels"]
    record = json.loads(summary.read_text())
    assert record["region_repaired_input_sections"] == [2, 5]
    assert record["region_repaired_output_sections"] == [4, 10]


def test_cli_dry_run_and_the_upsampled_section_agree_with_fix(tmp_path: Path) -> None:
    """The same partly lost section repaired by upsample-z (at z * factor) and by fix is the same section."""
    _, vol, _ = damaged(depth=5, size=96)
    vol[4] = vol[3]  # only section 2 is damaged
    src = write_h5(tmp_path / "in.h5", vol)
    runner = CliRunner()
    plan = runner.invoke(app, ["upsample-z", src, "--factor", "2", "--model", "linear", "--dry-run", "--json",
                               "--no-progress"])
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)
    assert planned["region_repaired_input_sections"] == [2] and planned["repaired_input_sections"] == [2]
    up = runner.invoke(app, ["upsample-z", src, "--factor", "2", "--model", "linear", "-o",
                             str(tmp_path / "up.h5"), "--no-progress"])
    fixed = runner.invoke(app, ["fix", src, "--model", "linear", "-o", str(tmp_path / "fix.h5"), "--no-progress"])
    assert up.exit_code == 0 and fixed.exit_code == 0, up.output + fixed.output
    assert "(z 2: only the lost region)" in " ".join(up.stdout.split())
    np.testing.assert_array_equal(read_all(tmp_path / "up.h5")[4], read_all(tmp_path / "fix.h5")[2])
