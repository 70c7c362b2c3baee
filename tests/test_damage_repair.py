"""Repair of the marking kinds: contrast regions corrected in place, precipitates only when asked, and every pixel
beyond the seam kept bit for bit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import drifting_tissue  # tests/ is on sys.path

from emrepair.detection import KIND_LABELS, detect_volume
from emrepair.detection.damage_config import DamageConfig
from emrepair.distributed.blocks import Block
from emrepair.distributed.plan import RepairRun
from emrepair.distributed.region_repair import SEAM_PX
from emrepair.distributed.repair import BlockWriter, RegionJob, read_window
from emrepair.io import ArrayVolume
from emrepair.models.regional_gain import region_gain_fit
from emrepair.simulate.damage import simulate_contrast


def tissue(depth: int = 5, size: int = 192, seed: int = 0) -> np.ndarray:
    """EM-like stand-in (helpers.drifting_tissue) at this file's default size."""
    return drifting_tissue(depth, size, seed)


class Mean:
    """Default repairer for the tests: the mean of the run's two neighbours."""

    def __call__(self, job: RegionJob) -> list[np.ndarray]:
        a = read_window(job.vol, job.run.left, job.ys, job.xs).astype(np.float32)
        b = read_window(job.vol, job.run.right, job.ys, job.xs).astype(np.float32)
        return [np.rint(0.5 * (a + b)).astype(job.vol.dtype) for _ in job.zs]


class Memory:
    """An in-memory writer."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.data = np.zeros(shape, np.uint8)

    def write_region(self, zs: slice, ys: slice, xs: slice, values: np.ndarray) -> None:
        self.data[zs, ys, xs] = values


def _write(vol: np.ndarray, kind: str, region: dict | None, repair_precipitates: bool = False):
    run = RepairRun(2, 2, 1, 3, {2: kind}, {2: {"region": region}} if region else {})
    out, masks = Memory(vol.shape), Memory(vol.shape)
    writer = BlockWriter(ArrayVolume(vol), out, masks, {"default": Mean()}, chunk_z=vol.shape[0],
                         repair_precipitates=repair_precipitates)
    writer.write(Block(0, vol.shape[0], (run,)))
    return out.data, masks.data


def _far(region: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) >= SEAM_PX


def test_region_gain_fit_undoes_a_gain_and_offset() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(120, 20, 4000)
    own = ref + rng.normal(0, 2, ref.size)
    inside = slice(0, 2000)
    changed = own.copy()
    changed[inside] = 0.6 * own[inside] + 10
    gain, offset = region_gain_fit(changed[inside], ref[inside], changed[2000:], ref[2000:])
    assert abs(gain * 0.6 - 1) < 0.05
    assert np.abs(gain * changed[inside] + offset - own[inside]).mean() < 3


def test_a_contrast_region_is_corrected_and_the_rest_kept() -> None:
    truth = tissue()
    vol = truth.copy()
    result = simulate_contrast(vol[2], np.random.default_rng(3), fraction=0.2, mode="dim")
    vol[2] = result.image
    report = detect_volume(ArrayVolume(vol), damage=DamageConfig())
    defect = next(d for d in report.marks if d.kind == "contrast")
    out, labels = _write(vol, "contrast", defect.region.to_dict())
    region = defect.region.mask()
    far = _far(region)
    assert np.array_equal(out[2][far], vol[2][far])
    assert not labels[2][far].any() and set(np.unique(labels[2])) <= {0, KIND_LABELS["contrast"]}
    inside = result.mask & region
    before = np.abs(vol[2][inside].astype(float) - truth[2][inside]).mean()
    after = np.abs(out[2][inside].astype(float) - truth[2][inside]).mean()
    assert after < 0.5 * before
    for z in (0, 1, 3, 4):
        assert np.array_equal(out[z], vol[z]) and not labels[z].any()


@pytest.mark.parametrize("asked", [False, True])
def test_precipitates_are_repaired_only_when_asked(asked: bool) -> None:
    vol = tissue()
    blob = np.zeros(vol.shape[1:], np.uint8)
    cv2.circle(blob, (100, 90), 14, 1, -1)
    blob = blob.astype(bool)
    vol[2][blob] = np.random.default_rng(1).integers(2, 20, int(blob.sum()))
    report = detect_volume(ArrayVolume(vol), damage=DamageConfig())
    defect = next(d for d in report.marks if d.kind == "precipitate")
    out, labels = _write(vol, "precipitate", defect.region.to_dict(), repair_precipitates=asked)
    if not asked:
        assert np.array_equal(out, vol) and not labels.any()
        return
    far = _far(defect.region.mask())
    assert np.array_equal(out[2][far], vol[2][far])
    assert out[2][blob].mean() > 5 * vol[2][blob].mean()
    assert set(np.unique(labels[2])) == {0, KIND_LABELS["precipitate"]}


def test_a_marked_section_without_its_region_is_copied_unchanged() -> None:
    vol = tissue()
    for kind in ("contrast", "precipitate"):
        out, labels = _write(vol, kind, None, repair_precipitates=True)
        assert np.array_equal(out, vol) and not labels.any()


def test_fix_with_a_report_of_marks_leaves_the_volume_alone(tmp_path) -> None:
    from helpers import read_all, write_h5

    from emrepair.pipelines.fix import FixOptions, run_fix

    vol = tissue()
    blob = np.zeros(vol.shape[1:], np.uint8)
    cv2.circle(blob, (100, 90), 14, 1, -1)
    vol[2][blob.astype(bool)] = np.random.default_rng(1).integers(2, 20, int(blob.sum()))
    src = write_h5(tmp_path / "in.h5", vol)
    report = detect_volume(ArrayVolume(vol), damage=DamageConfig())
    assert [d.kind for d in report.marks] == ["precipitate"]
    report.save(tmp_path / "r.json")
    result = run_fix(src, str(tmp_path / "out.h5"), FixOptions(model="linear", report_path=str(tmp_path / "r.json")))
    assert result.synthesized == []
    assert np.array_equal(read_all(tmp_path / "out.h5"), vol)


@pytest.mark.parametrize("asked", [False, True])
def test_fix_repairs_marked_precipitates_only_when_asked(tmp_path, asked: bool) -> None:
    from helpers import read_all, write_h5

    from emrepair.pipelines.fix import FixOptions, run_fix

    vol = tissue()
    blob = np.zeros(vol.shape[1:], np.uint8)
    cv2.circle(blob, (100, 90), 14, 1, -1)
    blob = blob.astype(bool)
    vol[2][blob] = np.random.default_rng(1).integers(2, 20, int(blob.sum()))
    src = write_h5(tmp_path / "in.h5", vol)
    options = FixOptions(model="linear", fold_model="none", repair_precipitates=asked,
                         masks_path=str(tmp_path / "m.h5"))
    result = run_fix(src, str(tmp_path / "out.h5"), options)
    out, labels = read_all(tmp_path / "out.h5"), read_all(tmp_path / "m.h5")
    if not asked:
        assert result.synthesized == [] and np.array_equal(out, vol) and not labels.any()
        return
    assert result.synthesized == [2]
    far = _far(blob)
    assert np.array_equal(out[2][far], vol[2][far]) and out[2][blob].mean() > 5 * vol[2][blob].mean()
    assert set(np.unique(labels[2])) == {0, KIND_LABELS["precipitate"]} and (labels[2] > 0)[blob].all()
    assert ((out[2] != vol[2]) <= (labels[2] > 0)).all()


def test_fix_corrects_a_contrast_region_it_finds(tmp_path) -> None:
    from helpers import read_all, write_h5

    from emrepair.pipelines.fix import FixOptions, run_fix

    truth = tissue()
    vol = truth.copy()
    damaged = simulate_contrast(vol[2], np.random.default_rng(3), fraction=0.2, mode="dim")
    vol[2] = damaged.image
    src = write_h5(tmp_path / "in.h5", vol)
    result = run_fix(src, str(tmp_path / "out.h5"),
                     FixOptions(model="linear", fold_model="none", masks_path=str(tmp_path / "m.h5")))
    out, labels = read_all(tmp_path / "out.h5"), read_all(tmp_path / "m.h5")
    assert result.synthesized == [2]
    assert ((out[2] != vol[2]) <= (labels[2] == KIND_LABELS["contrast"])).all()
    inside = damaged.mask
    before = np.abs(vol[2][inside].astype(float) - truth[2][inside]).mean()
    after = np.abs(out[2][inside].astype(float) - truth[2][inside]).mean()
    assert after < 0.5 * before
    assert all(np.array_equal(out[z], vol[z]) for z in (0, 1, 3, 4))


def test_detect_lists_the_marks_it_found(tmp_path) -> None:
    from helpers import write_h5
    from typer.testing import CliRunner

    from emrepair.cli.app import app

    vol = tissue()
    blob = np.zeros(vol.shape[1:], np.uint8)
    cv2.circle(blob, (100, 90), 14, 1, -1)
    vol[2][blob.astype(bool)] = np.random.default_rng(1).integers(2, 20, int(blob.sum()))
    result = CliRunner().invoke(app, ["detect", write_h5(tmp_path / "in.h5", vol)])
    assert result.exit_code == 0, result.output
    assert "no defects found" in result.stdout and "1 mark(s)" in result.stdout
    assert "precipitate" in result.stdout and "--repair-precipitates" in result.stdout.replace("\n", "")
