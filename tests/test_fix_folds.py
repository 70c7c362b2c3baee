"""fix with a fold-aware model: folded sections keep their real pixels away from the band."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.models import get_spec
from emrepair.pipelines.demo import sample_path

runner = CliRunner()

pytestmark = pytest.mark.skipif(not get_spec("sff").has_weights(), reason="weights/sff.pt is not present")


def sample_copy(tmp_path: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """The bundled sample's damaged stack as a one-dataset file, and its truth."""
    with h5py.File(sample_path(), "r") as f:
        raw, truth = f["raw"][:], f["truth"][:]
    path = tmp_path / "sample.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = raw
        f["raw"].attrs["resolution"] = [40.0, 10.0, 10.0]
    return str(path), raw, truth


def detect_report(src: str, tmp_path: Path) -> Path:
    report = tmp_path / "detect.json"
    result = runner.invoke(app, ["detect", src, "--report", str(report), "--no-progress"])
    assert result.exit_code == 0, result.output
    return report


def test_fold_model_keeps_pixels_away_from_the_band(tmp_path: Path) -> None:
    src, raw, truth = sample_copy(tmp_path)
    report = detect_report(src, tmp_path)
    out, masks = tmp_path / "out.h5", tmp_path / "masks.h5"
    result = runner.invoke(app, ["fix", src, "--report", str(report), "-o", str(out), "--masks", str(masks),
                                 "--model", "linear", "--no-progress", "--save-report", str(tmp_path / "fix.json")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "fix.json").read_text())
    # the sample's folds: 13 (family A), 3, 16 and the faint 10 (family B; 10 may stay unfound)
    assert summary["fold_model"] == "sff" and {3, 13, 16} <= set(summary["fold_repaired"]) <= {3, 10, 13, 16}
    with h5py.File(out, "r") as f, h5py.File(masks, "r") as m:
        fixed, labels = f["raw"][13], m["labels"][13]
        provenance = json.loads(f["raw"].attrs["emrepair"])
    changed = fixed != raw[13]
    assert changed.any()
    np.testing.assert_array_equal(labels > 0, changed)  # the masks label exactly the synthesized pixels
    assert set(np.unique(labels)) == {0, 2}
    assert changed.mean() < 0.5  # most of the folded section is its own, real pixels
    assert provenance["fold_repaired_sections"] == summary["fold_repaired"]
    error = lambda image: np.abs(image.astype(float) - truth[13]).mean()
    linear = 0.5 * raw[12].astype(float) + 0.5 * raw[14].astype(float)
    assert error(fixed) < 0.5 * error(linear)  # far better than interpolating the whole section


def test_fold_model_none_interpolates_whole_sections(tmp_path: Path) -> None:
    src, raw, _ = sample_copy(tmp_path)
    report = detect_report(src, tmp_path)
    out = tmp_path / "out.h5"
    result = runner.invoke(app, ["fix", src, "--report", str(report), "-o", str(out), "--model", "linear",
                                 "--fold-model", "none", "--no-progress"])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        fixed = f["raw"][13]
    expected = np.rint(0.5 * raw[12].astype(float) + 0.5 * raw[14].astype(float))
    assert np.abs(fixed - expected).max() <= 1


def test_models_of_the_wrong_kind_are_refused(tmp_path: Path) -> None:
    src, _, _ = sample_copy(tmp_path)
    for args in (["--model", "sff"], ["--model", "linear", "--fold-model", "flow"]):
        result = runner.invoke(app, ["fix", src, "--sections", "6", "-o", str(tmp_path / "x.h5"), *args])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error:") and "Traceback" not in result.stderr


def test_folded_first_section_is_unfolded_not_copied(tmp_path: Path) -> None:
    with h5py.File(sample_path(), "r") as f:
        raw, truth = f["raw"][13:16], f["truth"][13:16]  # the sample's folded section 13 becomes the first
    src = tmp_path / "first.h5"
    with h5py.File(src, "w") as f:
        f["raw"] = raw
        f["raw"].attrs["resolution"] = [40.0, 10.0, 10.0]
    report = detect_report(str(src), tmp_path)
    assert [d["z"] for d in json.loads(report.read_text())["defects"] if d["kind"] == "fold"] == [0]
    out, masks = tmp_path / "out.h5", tmp_path / "masks.h5"
    result = runner.invoke(app, ["fix", str(src), "--report", str(report), "-o", str(out), "--masks", str(masks),
                                 "--model", "linear", "--no-progress"])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f, h5py.File(masks, "r") as m:
        fixed, labels = f["raw"][0], m["labels"][0]
    changed = fixed != raw[0]
    assert changed.any() and changed.mean() < 0.5  # its own pixels are kept away from the band
    np.testing.assert_array_equal(labels > 0, changed)  # every changed pixel is in the masks
    assert (fixed == raw[1]).mean() < 0.5  # not a copy of the neighbour
    error = lambda image: np.abs(image.astype(float) - truth[0]).mean()
    assert error(fixed) < 0.5 * error(raw[1])
    assert "copied from section" not in result.output  # no note that it was copied
    with h5py.File(out, "r") as f:
        provenance = json.loads(f["raw"].attrs["emrepair"])
    assert provenance["fold_repaired_sections"] == [0]
